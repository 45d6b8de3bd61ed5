build2/obj/tests/test_server.o: tests/test_server.c src/server.h \
 src/chatparse.h src/sampler.h
src/server.h:
src/chatparse.h:
src/sampler.h:
