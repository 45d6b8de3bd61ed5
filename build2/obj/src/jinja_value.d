build2/obj/src/jinja_value.o: src/jinja_value.c src/jinja_impl.h \
 src/jinja.h
src/jinja_impl.h:
src/jinja.h:
