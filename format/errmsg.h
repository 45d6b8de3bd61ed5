/*
 * errmsg.h - the one way library code fills a caller's error buffer: a
 * printf-style message into err (when err and errlen are set), returning the
 * error code, so `return errmsg_set(err, errlen, -EINVAL, "...", ...);` reads
 * as one statement. The single error helper of the tree: the GGUF reader,
 * the split format, the splitter, the tokenizer, the expert provider, the
 * architecture binder and the synthetic model generator use it (rc 0 when the
 * caller keeps the code elsewhere).
 */
#ifndef MOESTREAM_ERRMSG_H
#define MOESTREAM_ERRMSG_H

#include <stddef.h>

int errmsg_set(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
