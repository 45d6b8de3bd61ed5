build2/obj/src/cli_eval.o: src/cli_eval.c src/cli.h src/engine.h \
 src/engine_types.h src/model.h src/hparams.h io/provider.h src/sampler.h \
 src/session.h format/gguf.h format/splitfmt.h src/tokenizer.h
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
src/tokenizer.h:
