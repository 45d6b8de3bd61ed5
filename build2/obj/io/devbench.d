build2/obj/io/devbench.o: io/devbench.c io/devbench.h io/reader.h
io/devbench.h:
io/reader.h:
