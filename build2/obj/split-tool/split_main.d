build2/obj/split-tool/split_main.o: split-tool/split_main.c format/gguf.h \
 kernels/quant.h kernels/quant_blocks.h split-tool/split.h \
 format/splitfmt.h
format/gguf.h:
kernels/quant.h:
kernels/quant_blocks.h:
split-tool/split.h:
format/splitfmt.h:
