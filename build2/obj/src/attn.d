build2/obj/src/attn.o: src/attn.c src/attn.h src/fwd.h src/engine_types.h \
 io/expert_stream.h src/model.h src/hparams.h io/provider.h \
 kernels/pool.h io/prefetch.h src/blocks.h src/seq.h
src/attn.h:
src/fwd.h:
src/engine_types.h:
io/expert_stream.h:
src/model.h:
src/hparams.h:
io/provider.h:
kernels/pool.h:
io/prefetch.h:
src/blocks.h:
src/seq.h:
