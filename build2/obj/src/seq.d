build2/obj/src/seq.o: src/seq.c src/seq.h src/arch.h src/hparams.h \
 src/model.h io/provider.h
src/seq.h:
src/arch.h:
src/hparams.h:
src/model.h:
io/provider.h:
