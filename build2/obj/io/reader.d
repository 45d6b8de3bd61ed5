build2/obj/io/reader.o: io/reader.c io/reader_impl.h io/reader.h
io/reader_impl.h:
io/reader.h:
