build2/obj/src/server_queue.o: src/server_queue.c src/server.h \
 src/chatparse.h src/sampler.h
src/server.h:
src/chatparse.h:
src/sampler.h:
