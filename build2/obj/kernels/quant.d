build2/obj/kernels/quant.o: kernels/quant.c kernels/quant.h \
 kernels/quant_blocks.h kernels/qformat.h kernels/quant_ref.h
kernels/quant.h:
kernels/quant_blocks.h:
kernels/qformat.h:
kernels/quant_ref.h:
