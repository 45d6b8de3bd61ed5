build2/obj/src/jinja_eval.o: src/jinja_eval.c format/errmsg.h \
 src/jinja_impl.h src/jinja.h
format/errmsg.h:
src/jinja_impl.h:
src/jinja.h:
