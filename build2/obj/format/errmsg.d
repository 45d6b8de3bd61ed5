build2/obj/format/errmsg.o: format/errmsg.c format/errmsg.h
format/errmsg.h:
