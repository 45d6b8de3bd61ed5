build2/obj/src/cli_template.o: src/cli_template.c src/chat.h src/cli.h \
 src/engine.h src/engine_types.h src/model.h src/hparams.h io/provider.h \
 src/sampler.h src/session.h format/gguf.h format/splitfmt.h
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
format/splitfmt.h:
