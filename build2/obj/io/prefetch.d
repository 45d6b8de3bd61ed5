build2/obj/io/prefetch.o: io/prefetch.c io/prefetch.h
io/prefetch.h:
