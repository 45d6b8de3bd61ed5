# moestream - one Makefile. Objects under $(BUILD)/, binaries in $(BUILD)/bin.
# Every .c under src/ split-tool/ kernels/ io/ bench/ is library code except the
# *_main.c files (one per program); tests/test_<module>.c are cmocka suites.

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE
INCS     := -Isrc -Iformat -Isplit-tool -Ikernels -Iio -Ibench -I$(BUILD)
# The git revision for --version: rewritten only when it changes, so a commit
# recompiles src/version.c alone.
REVISION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LIBS     := -luring -lnuma -lzstd -lxxhash -lpcre2-8 -ljansson -lmicrohttpd -lpthread -lm
ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
              -mavx512vnni -mavx512bf16

MAINS    := $(wildcard split-tool/*_main.c bench/*_main.c io/*_main.c kernels/*_main.c)
SRCS     := $(filter-out $(MAINS) src/main.c,$(wildcard src/*.c format/*.c split-tool/*.c kernels/*.c io/*.c bench/*.c))
OBJS     := $(SRCS:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libmoestream.a
# src/main.c -> moestream; <dir>/<x>_main.c -> moestream-<x>
PROGS    := $(BUILD)/bin/moestream $(patsubst %_main.c,$(BUILD)/bin/moestream-%,$(notdir $(MAINS)))
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all test bench install sanitize fuzz fuzz-jinja fuzz-server format clean help deps demo demo-random FORCE

all: $(PROGS)

help:
	@echo "make            build moestream, moestream-split, moestream-synth, moestream-kbench into $(BUILD)/bin"
	@echo "make demo       install Debian packages if missing, build, stream the shipped tinymoe model"
	@echo "                (models/tinymoe-Q4_K_M.gguf) under a RAM budget smaller than its experts"
	@echo "make demo-random  the same with a 250 MB synthetic model (random weights; I/O behaviour)"
	@echo "make test       build and run every cmocka suite in tests/ (needs ../shared/fixtures for golden tests)"
	@echo "make sanitize   the test suite under ASan+UBSan (objects in build-asan/)"
	@echo "make fuzz       libFuzzer target for the GGUF parser (installs clang); FUZZ_SECONDS=60"
	@echo "make fuzz-jinja libFuzzer target for the Jinja engine and the chat output parser; FUZZ_SECONDS=60"
	@echo "make fuzz-server libFuzzer target for the server's HTTP and JSON request handling; FUZZ_SECONDS=60"
	@echo "make bench      the benchmarks in bench/ (see bench/README.md)"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"
	@echo "make deps       apt-get install the Debian packages the build needs"
	@echo "make format     clang-format every source file"
	@echo "make clean      remove build outputs (build/, build-asan/; models/ is kept)"

deps:
	@sh tests/deps.sh

$(BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(ISA_AVX2) $(INCS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(ISA_AVX512) $(INCS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(INCS) -MMD -MP -c $< -o $@

$(BUILD)/moestream_rev.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define MOESTREAM_REVISION "$(REVISION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@

$(BUILD)/obj/src/version.o: $(BUILD)/moestream_rev.h

$(LIB): $(OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/moestream: $(BUILD)/obj/src/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

define prog_rule
$(BUILD)/bin/moestream-$(patsubst %_main.c,%,$(notdir $(1))): $(BUILD)/obj/$(1:.c=.o) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach m,$(MAINS),$(eval $(call prog_rule,$(m))))

# Keep the test objects (make would delete them as intermediates).
.SECONDARY: $(TESTS:$(BUILD)/tests/%=$(BUILD)/obj/tests/%.o)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS) -lcmocka

# The suites find the binaries through MOESTREAM_BIN and fixtures beside the repo.
# deps runs first, then a sub-make builds: with -j, nothing compiles before
# the packages are there.
test: deps
	@$(MAKE) --no-print-directory all $(TESTS)
	@sh tests/include_graph.sh
	@sh tests/run.sh $(BUILD) $(TESTS)

sanitize:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

FUZZ_SECONDS ?= 60
# The parser depends on the format facts only (kernels/qformat.c), so the
# whole target is one clang build with the sanitizers and the fuzzer.
fuzz:
	@sh tests/deps.sh clang
	@mkdir -p $(BUILD)/fuzz/corpus
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined $(INCS) -o $(BUILD)/fuzz/fuzz_gguf \
	    tests/fuzz_gguf.c format/gguf.c format/gguf_get.c format/gguf_info.c format/gguf_writer.c format/ntab.c format/errmsg.c kernels/qformat.c -lpthread -lm
	$(BUILD)/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/fuzz/corpus tests/fuzz_seeds

# Template engine + output parser: own seeds, plus the published templates
# of ../shared/fixtures (or $$MOESTREAM_FIXTURES) with a conversation when
# present (copied into the build tree, not the repository).
JINJA_FIXTURES ?= $(if $(MOESTREAM_FIXTURES),$(MOESTREAM_FIXTURES),../shared/fixtures)/templates
fuzz-jinja:
	@sh tests/deps.sh clang
	@mkdir -p $(BUILD)/fuzz-jinja/corpus $(BUILD)/fuzz-jinja/seeds
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined $(INCS) -o $(BUILD)/fuzz-jinja/fuzz_jinja \
	    tests/fuzz_jinja.c src/jinja_lex.c src/jinja_parse.c src/jinja_eval.c src/jinja_value.c src/jinja_filters.c src/jinja_methods.c \
	    src/chatparse.c format/errmsg.c -ljansson -lm
	@for t in $(wildcard $(JINJA_FIXTURES)/*.jinja); do \
	    { cat "$$t"; printf '\000'; cat tests/fuzz_jinja_conv.json; } \
	        > $(BUILD)/fuzz-jinja/seeds/$$(basename "$$t" .jinja).seed; done
	$(BUILD)/fuzz-jinja/fuzz_jinja -max_total_time=$(FUZZ_SECONDS) -max_len=32768 -timeout=20 -rss_limit_mb=2048 \
	    $(BUILD)/fuzz-jinja/corpus $(BUILD)/fuzz-jinja/seeds tests/fuzz_seeds_jinja

# The server's request handling: the HTTP side (a real libmicrohttpd daemon
# on loopback), the routes, bodies, queue, templates and tokenizer, built
# with clang and the sanitizers; tokenizer and template from the fixtures.
FUZZ_FIXTURES ?= $(abspath $(if $(MOESTREAM_FIXTURES),$(MOESTREAM_FIXTURES),../shared/fixtures))
FUZZ_SERVER_SRCS := tests/fuzz_server.c src/server_http.c src/server_routes.c src/server_sse.c src/server_queue.c \
    src/chat.c src/chatparse.c $(wildcard src/jinja_*.c) src/tokenizer.c src/tokenizer_bpe.c src/tokenizer_spm.c \
    src/sampler.c format/gguf.c format/gguf_get.c format/ntab.c format/errmsg.c kernels/qformat.c
fuzz-server:
	@sh tests/deps.sh clang
	@mkdir -p $(BUILD)/fuzz-server/corpus
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(INCS) \
	    -o $(BUILD)/fuzz-server/fuzz_server $(FUZZ_SERVER_SRCS) -lmicrohttpd -lpcre2-8 -ljansson -lpthread -lm
	MOESTREAM_FIXTURES=$(FUZZ_FIXTURES) $(BUILD)/fuzz-server/fuzz_server -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=8192 -timeout=20 -rss_limit_mb=2048 $(BUILD)/fuzz-server/corpus tests/fuzz_seeds_server

bench: all
	@sh bench/run.sh $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory all
	@sh bench/demo.sh $(BUILD)

demo-random: deps
	@$(MAKE) --no-print-directory all
	@sh bench/demo_random.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/

format:
	clang-format -i $(wildcard src/*.[ch] format/*.[ch] split-tool/*.[ch] kernels/*.[ch] io/*.[ch] bench/*.[ch] tests/*.[ch])

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
