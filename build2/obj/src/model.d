build2/obj/src/model.o: src/model.c src/model.h src/hparams.h \
 io/provider.h src/arch.h io/budget.h format/gguf.h io/pinned.h \
 kernels/quant.h kernels/quant_blocks.h format/splitfmt.h
src/model.h:
src/hparams.h:
io/provider.h:
src/arch.h:
io/budget.h:
format/gguf.h:
io/pinned.h:
kernels/quant.h:
kernels/quant_blocks.h:
format/splitfmt.h:
