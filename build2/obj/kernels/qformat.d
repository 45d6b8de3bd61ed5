build2/obj/kernels/qformat.o: kernels/qformat.c kernels/qformat.h \
 kernels/quant_blocks.h
kernels/qformat.h:
kernels/quant_blocks.h:
