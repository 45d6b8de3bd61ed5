build2/obj/src/server_http.o: src/server_http.c src/server.h \
 src/chatparse.h src/sampler.h
src/server.h:
src/chatparse.h:
src/sampler.h:
