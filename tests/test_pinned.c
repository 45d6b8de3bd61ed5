/*
 * test_pinned.c - pinned.bin loading (io/pinned.c): bytes land at each
 * tensor's offset, XXH3 is checked per tensor, and the errors name the
 * tensor and the file (checksum mismatch, tensor beyond the end, size that
 * disagrees with the manifest, missing file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "pinned.h"
#include "splitfmt.h"

#define FILE_SIZE (3 * SPLIT_PINNED_ALIGN + 1000)

struct pin_fixture {
    char dir[256];
    uint8_t bytes[FILE_SIZE];
    struct split_tensor t[3];
    struct split_model m;
};

static int setup(void **state)
{
    struct pin_fixture *f = calloc(1, sizeof *f);
    static const char *names[3] = {"token_embd.weight", "blk.0.attn_q.weight", "output.weight"};
    uint64_t sizes[3] = {4000, 100, 1000};
    int fd;

    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/moestream-pin-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    for (int i = 0; i < FILE_SIZE; i++)
        f->bytes[i] = (uint8_t)(i * 7 + 3);
    for (int i = 0; i < 3; i++) {
        f->t[i].name = names[i];
        f->t[i].offset = (uint64_t)i * SPLIT_PINNED_ALIGN;
        f->t[i].size = sizes[i];
        f->t[i].xxh3 = XXH3_64bits(f->bytes + f->t[i].offset, sizes[i]);
    }
    snprintf(f->m.pinned_path, sizeof f->m.pinned_path, "%s/" SPLIT_PINNED, f->dir);
    f->m.pinned_file_size = FILE_SIZE;
    f->m.n_tensor = 3;
    f->m.tensors = f->t;
    fd = open(f->m.pinned_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, f->bytes, FILE_SIZE) != FILE_SIZE)
        return -1;
    close(fd);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct pin_fixture *f = *state;

    unlink(f->m.pinned_path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* progress of the load: calls with done rising to total, for both phases */
static int prog_calls, prog_verify_calls;
static uint64_t prog_last_done, prog_last_total;

static void on_progress(const char *what, uint64_t done, uint64_t total)
{
    if (strstr(what, "checking"))
        prog_verify_calls++;
    else {
        assert_true(done > prog_last_done || prog_calls == 0);
        prog_calls++;
        prog_last_done = done;
        prog_last_total = total;
    }
}

static void test_load_progress(void **state)
{
    struct pin_fixture *f = *state;
    struct pinned p;
    char err[512];

    assert_int_equal(pinned_load_progress(&p, &f->m, false, true, on_progress, err, sizeof err), 0);
    assert_true(prog_calls >= 1);
    assert_int_equal(prog_last_done, FILE_SIZE);
    assert_int_equal(prog_last_total, FILE_SIZE);
    assert_int_equal(prog_verify_calls, (int)f->m.n_tensor);
    assert_memory_equal(p.base, f->bytes, FILE_SIZE);
    pinned_free(&p);
}

static void test_load_ok(void **state)
{
    struct pin_fixture *f = *state;
    struct pinned p;
    char err[512];

    assert_int_equal(pinned_load(&p, &f->m, false, true, err, sizeof err), 0);
    assert_int_equal(p.size, FILE_SIZE);
    assert_memory_equal(p.base, f->bytes, FILE_SIZE);
    assert_int_equal((uintptr_t)p.base % 4096, 0);
    pinned_free(&p);
    assert_null(p.base);
    /* mlock may be refused by the limit; either way the message says so */
    int rc = pinned_load(&p, &f->m, true, false, err, sizeof err);
    if (rc == 0)
        pinned_free(&p);
    else
        assert_non_null(strstr(err, "mlock"));
}

static void test_checksum_names_tensor(void **state)
{
    struct pin_fixture *f = *state;
    struct pinned p;
    char err[512];

    f->t[1].xxh3 ^= 1;
    assert_int_equal(pinned_load(&p, &f->m, false, true, err, sizeof err), -EIO);
    print_message("error: %s\n", err);
    assert_non_null(strstr(err, "blk.0.attn_q.weight"));
    assert_non_null(strstr(err, f->m.pinned_path));
    assert_non_null(strstr(err, "checksum"));
    assert_null(p.base);
    /* without verification it loads */
    assert_int_equal(pinned_load(&p, &f->m, false, false, err, sizeof err), 0);
    pinned_free(&p);
    f->t[1].xxh3 ^= 1;
}

static void test_bad_sizes(void **state)
{
    struct pin_fixture *f = *state;
    struct pinned p;
    char err[512];

    f->t[2].size = 6000;
    assert_int_equal(pinned_load(&p, &f->m, false, true, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "output.weight"));
    assert_non_null(strstr(err, "beyond the end"));
    f->t[2].size = 1000;
    f->m.pinned_file_size = FILE_SIZE + 1;
    assert_int_equal(pinned_load(&p, &f->m, false, true, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "manifest says"));
    f->m.pinned_file_size = FILE_SIZE;
    unlink(f->m.pinned_path);
    assert_int_equal(pinned_load(&p, &f->m, false, true, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, f->m.pinned_path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_ok),
        cmocka_unit_test(test_load_progress),
        cmocka_unit_test(test_checksum_names_tensor),
        cmocka_unit_test(test_bad_sizes),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
