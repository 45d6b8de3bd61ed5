build2/obj/src/chat.o: src/chat.c src/chat.h format/errmsg.h \
 format/gguf.h src/jinja.h
src/chat.h:
format/errmsg.h:
format/gguf.h:
src/jinja.h:
