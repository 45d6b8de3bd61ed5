build2/obj/src/server_sse.o: src/server_sse.c src/server.h \
 src/chatparse.h src/sampler.h
src/server.h:
src/chatparse.h:
src/sampler.h:
