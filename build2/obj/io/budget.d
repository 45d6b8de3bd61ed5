build2/obj/io/budget.o: io/budget.c io/budget.h
io/budget.h:
