build2/obj/io/reader_buffered.o: io/reader_buffered.c io/reader_impl.h \
 io/reader.h
io/reader_impl.h:
io/reader.h:
