build2/obj/kernels/matvec.o: kernels/matvec.c kernels/matvec.h \
 kernels/pool.h kernels/quant.h kernels/quant_blocks.h
kernels/matvec.h:
kernels/pool.h:
kernels/quant.h:
kernels/quant_blocks.h:
