build2/obj/src/chatparse.o: src/chatparse.c src/chatparse.h
src/chatparse.h:
