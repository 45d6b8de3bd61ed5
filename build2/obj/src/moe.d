build2/obj/src/moe.o: src/moe.c src/moe.h src/fwd.h src/engine_types.h \
 io/expert_stream.h src/model.h src/hparams.h io/provider.h \
 kernels/pool.h io/prefetch.h src/blocks.h kernels/matvec.h \
 kernels/pool.h kernels/quant.h kernels/quant_blocks.h kernels/quant.h \
 format/splitfmt.h
src/moe.h:
src/fwd.h:
src/engine_types.h:
io/expert_stream.h:
src/model.h:
src/hparams.h:
io/provider.h:
kernels/pool.h:
io/prefetch.h:
src/blocks.h:
kernels/matvec.h:
kernels/pool.h:
kernels/quant.h:
kernels/quant_blocks.h:
kernels/quant.h:
format/splitfmt.h:
