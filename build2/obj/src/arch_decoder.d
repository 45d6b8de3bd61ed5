build2/obj/src/arch_decoder.o: src/arch_decoder.c src/arch_decoder.h \
 src/arch.h src/hparams.h src/attn.h src/fwd.h src/engine_types.h \
 io/expert_stream.h src/model.h io/provider.h kernels/pool.h \
 io/prefetch.h src/blocks.h src/moe.h kernels/quant.h \
 kernels/quant_blocks.h src/seq.h
src/arch_decoder.h:
src/arch.h:
src/hparams.h:
src/attn.h:
src/fwd.h:
src/engine_types.h:
io/expert_stream.h:
src/model.h:
io/provider.h:
kernels/pool.h:
io/prefetch.h:
src/blocks.h:
src/moe.h:
kernels/quant.h:
kernels/quant_blocks.h:
src/seq.h:
