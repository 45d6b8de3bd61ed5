build2/obj/src/tokenizer_spm.o: src/tokenizer_spm.c src/tokenizer_impl.h \
 src/tokenizer.h
src/tokenizer_impl.h:
src/tokenizer.h:
