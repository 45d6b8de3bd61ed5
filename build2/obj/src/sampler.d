build2/obj/src/sampler.o: src/sampler.c src/sampler.h
src/sampler.h:
