build2/obj/split-tool/split.o: split-tool/split.c split-tool/split.h \
 src/arch.h src/hparams.h format/errmsg.h format/gguf.h kernels/quant.h \
 kernels/quant_blocks.h format/splitfmt.h
split-tool/split.h:
src/arch.h:
src/hparams.h:
format/errmsg.h:
format/gguf.h:
kernels/quant.h:
kernels/quant_blocks.h:
format/splitfmt.h:
