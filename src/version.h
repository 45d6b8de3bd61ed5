/*
 * version.h - what `--version` prints for every program: the program name,
 * the git revision the binary was built from (written by the Makefile into
 * $(BUILD)/version.h; "unknown" outside a git checkout) and the kernel ISA the
 * CPU selects (MOESTREAM_ISA honoured). Formats only; the mains print.
 */
#ifndef MOESTREAM_VERSION_H
#define MOESTREAM_VERSION_H

#include <stdbool.h>
#include <stddef.h>

/* The git revision, e.g. "3913087" or "3913087-dirty". */
const char *version_revision(void);

/* One line "PROG REVISION (ISA avx512)" into buf (no newline). */
void version_format(char *buf, size_t n, const char *prog);

/* Is any of argv[1..argc-1] "--version"? (before the first "--") */
bool version_asked(int argc, char **argv);

#endif
