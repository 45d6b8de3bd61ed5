/*
 * test_sh.h - the shell runner shared by the tests that drive the built
 * binaries (test_cli, test_server, test_split_requant, test_stripe,
 * test_tier): sh() runs a command and keeps its output in out[].
 * Header-only; include after <cmocka.h> (it uses assert_non_null).
 */
#ifndef MOESTREAM_TEST_SH_H
#define MOESTREAM_TEST_SH_H

#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>

/* the last command's output (stdout, and stderr where the command redirects it) */
static char out[1 << 16];

/* Runs the printf-formatted shell command; its output goes to out; returns
 * its exit code (128 when it did not exit normally). */
static int sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
