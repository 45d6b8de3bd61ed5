build2/obj/kernels/pool.o: kernels/pool.c kernels/pool.h
kernels/pool.h:
