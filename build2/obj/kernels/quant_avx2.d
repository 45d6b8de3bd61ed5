build2/obj/kernels/quant_avx2.o: kernels/quant_avx2.c kernels/quant.h \
 kernels/quant_blocks.h kernels/quant_ref.h
kernels/quant.h:
kernels/quant_blocks.h:
kernels/quant_ref.h:
