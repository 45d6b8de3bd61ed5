build2/obj/src/jinja_filters.o: src/jinja_filters.c src/jinja_impl.h \
 src/jinja.h
src/jinja_impl.h:
src/jinja.h:
