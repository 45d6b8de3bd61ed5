build2/obj/io/pinned.o: io/pinned.c io/pinned.h format/splitfmt.h
io/pinned.h:
format/splitfmt.h:
