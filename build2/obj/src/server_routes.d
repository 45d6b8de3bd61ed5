build2/obj/src/server_routes.o: src/server_routes.c src/chat.h \
 src/server.h src/chatparse.h src/sampler.h src/tokenizer.h
src/chat.h:
src/server.h:
src/chatparse.h:
src/sampler.h:
src/tokenizer.h:
