build2/obj/io/reader_pread.o: io/reader_pread.c io/reader_impl.h \
 io/reader.h
io/reader_impl.h:
io/reader.h:
