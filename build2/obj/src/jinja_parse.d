build2/obj/src/jinja_parse.o: src/jinja_parse.c src/jinja_impl.h \
 src/jinja.h
src/jinja_impl.h:
src/jinja.h:
