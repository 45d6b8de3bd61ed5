build2/obj/src/arch_bind.o: src/arch_bind.c src/arch.h src/hparams.h \
 format/gguf.h kernels/quant.h kernels/quant_blocks.h format/splitfmt.h
src/arch.h:
src/hparams.h:
format/gguf.h:
kernels/quant.h:
kernels/quant_blocks.h:
format/splitfmt.h:
