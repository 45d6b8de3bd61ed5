build2/obj/format/gguf.o: format/gguf.c format/gguf.h format/errmsg.h \
 kernels/qformat.h kernels/quant_blocks.h
format/gguf.h:
format/errmsg.h:
kernels/qformat.h:
kernels/quant_blocks.h:
