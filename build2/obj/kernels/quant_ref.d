build2/obj/kernels/quant_ref.o: kernels/quant_ref.c kernels/quant_ref.h \
 kernels/quant_blocks.h
kernels/quant_ref.h:
kernels/quant_blocks.h:
