build2/obj/io/provider.o: io/provider.c io/provider.h io/ecache.h \
 io/reader.h format/splitfmt.h
io/provider.h:
io/ecache.h:
io/reader.h:
format/splitfmt.h:
