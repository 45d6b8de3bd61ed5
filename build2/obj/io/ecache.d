build2/obj/io/ecache.o: io/ecache.c io/ecache.h
io/ecache.h:
