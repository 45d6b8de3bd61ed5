build2/obj/src/arch.o: src/arch.c src/arch.h src/hparams.h format/gguf.h
src/arch.h:
src/hparams.h:
format/gguf.h:
