build2/obj/src/jinja_lex.o: src/jinja_lex.c src/jinja_impl.h src/jinja.h
src/jinja_impl.h:
src/jinja.h:
