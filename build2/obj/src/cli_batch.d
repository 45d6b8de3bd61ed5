build2/obj/src/cli_batch.o: src/cli_batch.c src/cli.h src/engine.h \
 src/engine_types.h src/model.h src/hparams.h io/provider.h src/sampler.h \
 src/session.h src/seq.h src/tokenizer.h
src/cli.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/sampler.h:
src/session.h:
src/seq.h:
src/tokenizer.h:
