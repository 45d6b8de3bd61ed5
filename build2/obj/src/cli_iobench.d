build2/obj/src/cli_iobench.o: src/cli_iobench.c src/cli.h src/engine.h \
 src/engine_types.h src/model.h src/hparams.h io/provider.h src/sampler.h \
 src/session.h io/devbench.h io/reader.h src/replay.h src/trace.h \
 format/splitfmt.h
src/cli.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/sampler.h:
src/session.h:
io/devbench.h:
io/reader.h:
src/replay.h:
src/trace.h:
format/splitfmt.h:
