/*
 * version.c - the version line of every program (see version.h). The
 * revision comes from the generated header moestream_rev.h (-I$(BUILD)).
 */
#include "version.h"

#include <stdio.h>
#include <string.h>

#include "moestream_rev.h"
#include "quant.h"

const char *version_revision(void)
{
    return MOESTREAM_REVISION;
}

void version_format(char *buf, size_t n, const char *prog)
{
    const char *isa = quant_init() == 0 ? quant_isa_name() : "unavailable";
    snprintf(buf, n, "%s %s (ISA %s)", prog, version_revision(), isa);
}

bool version_asked(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--version"))
            return true;
    }
    return false;
}
