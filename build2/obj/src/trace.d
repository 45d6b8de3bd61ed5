build2/obj/src/trace.o: src/trace.c src/trace.h
src/trace.h:
