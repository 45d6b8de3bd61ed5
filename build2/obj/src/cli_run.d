build2/obj/src/cli_run.o: src/cli_run.c src/chat.h src/chatparse.h \
 src/cli.h src/engine.h src/engine_types.h src/model.h src/hparams.h \
 io/provider.h src/sampler.h src/session.h format/gguf.h src/tokenizer.h
src/chat.h:
src/chatparse.h:
src/cli.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/sampler.h:
src/session.h:
format/gguf.h:
src/tokenizer.h:
