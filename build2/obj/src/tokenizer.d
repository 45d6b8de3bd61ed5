build2/obj/src/tokenizer.o: src/tokenizer.c src/tokenizer.h format/gguf.h \
 src/tokenizer_impl.h
src/tokenizer.h:
format/gguf.h:
src/tokenizer_impl.h:
