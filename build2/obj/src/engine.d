build2/obj/src/engine.o: src/engine.c src/engine.h src/engine_types.h \
 src/model.h src/hparams.h io/provider.h src/arch.h src/blocks.h \
 src/fwd.h io/expert_stream.h kernels/pool.h io/prefetch.h \
 kernels/matvec.h kernels/pool.h kernels/quant.h kernels/quant_blocks.h \
 kernels/quant.h src/seq.h format/splitfmt.h
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/arch.h:
src/blocks.h:
src/fwd.h:
io/expert_stream.h:
kernels/pool.h:
io/prefetch.h:
kernels/matvec.h:
kernels/pool.h:
kernels/quant.h:
kernels/quant_blocks.h:
kernels/quant.h:
src/seq.h:
format/splitfmt.h:
