build2/obj/src/cli_serve.o: src/cli_serve.c src/chat.h src/cli.h \
 src/engine.h src/engine_types.h src/model.h src/hparams.h io/provider.h \
 src/sampler.h src/session.h format/gguf.h src/server.h src/chatparse.h \
 src/tokenizer.h
src/chat.h:
src/cli.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/sampler.h:
src/session.h:
format/gguf.h:
src/server.h:
src/chatparse.h:
src/tokenizer.h:
