build2/obj/bench/synth.o: bench/synth.c bench/synth.h format/errmsg.h \
 format/gguf.h kernels/quant.h kernels/quant_blocks.h split-tool/split.h \
 format/splitfmt.h
bench/synth.h:
format/errmsg.h:
format/gguf.h:
kernels/quant.h:
kernels/quant_blocks.h:
split-tool/split.h:
format/splitfmt.h:
