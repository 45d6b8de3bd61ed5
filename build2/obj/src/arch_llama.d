build2/obj/src/arch_llama.o: src/arch_llama.c src/arch_decoder.h \
 src/arch.h src/hparams.h
src/arch_decoder.h:
src/arch.h:
src/hparams.h:
