build2/obj/src/main.o: src/main.c src/cli.h src/engine.h \
 src/engine_types.h src/model.h src/hparams.h io/provider.h src/sampler.h \
 src/session.h
src/cli.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/sampler.h:
src/session.h:
