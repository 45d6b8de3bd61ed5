build2/obj/src/tokenizer_bpe.o: src/tokenizer_bpe.c format/gguf.h \
 src/tokenizer_impl.h src/tokenizer.h
format/gguf.h:
src/tokenizer_impl.h:
src/tokenizer.h:
