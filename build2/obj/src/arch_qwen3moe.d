build2/obj/src/arch_qwen3moe.o: src/arch_qwen3moe.c src/arch_decoder.h \
 src/arch.h src/hparams.h
src/arch_decoder.h:
src/arch.h:
src/hparams.h:
