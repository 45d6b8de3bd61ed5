build2/obj/src/replay.o: src/replay.c src/replay.h src/engine.h \
 src/engine_types.h src/model.h src/hparams.h io/provider.h src/trace.h \
 io/expert_stream.h
src/replay.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/trace.h:
io/expert_stream.h:
