build2/obj/src/blocks.o: src/blocks.c src/blocks.h src/fwd.h \
 src/engine_types.h io/expert_stream.h src/model.h src/hparams.h \
 io/provider.h kernels/pool.h io/prefetch.h kernels/matvec.h \
 kernels/pool.h kernels/quant.h kernels/quant_blocks.h kernels/quant.h
src/blocks.h:
src/fwd.h:
src/engine_types.h:
io/expert_stream.h:
src/model.h:
src/hparams.h:
io/provider.h:
kernels/pool.h:
io/prefetch.h:
kernels/matvec.h:
kernels/pool.h:
kernels/quant.h:
kernels/quant_blocks.h:
kernels/quant.h:
