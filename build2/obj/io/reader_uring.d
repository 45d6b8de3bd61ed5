build2/obj/io/reader_uring.o: io/reader_uring.c io/reader_impl.h \
 io/reader.h
io/reader_impl.h:
io/reader.h:
