build2/obj/src/server_sched.o: src/server_sched.c src/engine.h \
 src/engine_types.h src/model.h src/hparams.h io/provider.h src/seq.h \
 src/server.h src/chatparse.h src/sampler.h src/tokenizer.h
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/seq.h:
src/server.h:
src/chatparse.h:
src/sampler.h:
src/tokenizer.h:
