build2/obj/format/splitfmt.o: format/splitfmt.c format/splitfmt.h \
 format/errmsg.h format/gguf.h kernels/qformat.h kernels/quant_blocks.h
format/splitfmt.h:
format/errmsg.h:
format/gguf.h:
kernels/qformat.h:
kernels/quant_blocks.h:
