build2/obj/src/cli.o: src/cli.c src/cli.h src/engine.h src/engine_types.h \
 src/model.h src/hparams.h io/provider.h src/sampler.h src/session.h \
 format/gguf.h kernels/matvec.h kernels/pool.h kernels/quant.h \
 kernels/quant_blocks.h kernels/quant.h src/tokenizer.h src/trace.h
src/cli.h:
src/engine.h:
src/engine_types.h:
src/model.h:
src/hparams.h:
io/provider.h:
src/sampler.h:
src/session.h:
format/gguf.h:
kernels/matvec.h:
kernels/pool.h:
kernels/quant.h:
kernels/quant_blocks.h:
kernels/quant.h:
src/tokenizer.h:
src/trace.h:
