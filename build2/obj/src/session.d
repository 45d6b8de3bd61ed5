build2/obj/src/session.o: src/session.c src/session.h src/engine.h \
 src/engine_types.h src/model.h src/hparams.h io/provider.h src/seq.h
src/session.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/seq.h:
