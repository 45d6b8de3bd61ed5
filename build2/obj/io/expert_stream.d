build2/obj/io/expert_stream.o: io/expert_stream.c io/expert_stream.h \
 io/provider.h
io/expert_stream.h:
io/provider.h:
