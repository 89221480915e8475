/*
 * Copyright (C) ngx_tunnel developers
 *
 * A minimal assertion kit for the unit tests: each failed CHECK prints where
 * and what was expected, and the test goes on; check_done() gives the exit
 * status.
 */

#ifndef _CHECK_H_INCLUDED_
#define _CHECK_H_INCLUDED_


#include <stdio.h>
#include <string.h>


static int  check_failed;
static int  check_count;


#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        check_count++;                                                       \
        if (!(cond)) {                                                       \
            check_failed++;                                                  \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)


/* compare bytes; on a mismatch print both sides in hex */
#define CHECK_MEM(got, want, n, what)                                        \
    do {                                                                     \
        check_count++;                                                       \
        if (memcmp((got), (want), (n)) != 0) {                               \
            check_failed++;                                                  \
            fprintf(stderr, "%s:%d: FAIL: %s differs\n", __FILE__, __LINE__, \
                    (what));                                                 \
            check_hex("  got ", (const unsigned char *) (got), (n));         \
            check_hex("  want", (const unsigned char *) (want), (n));        \
        }                                                                    \
    } while (0)


static inline void
check_hex(const char *label, const unsigned char *p, size_t n)
{
    size_t  i;

    fprintf(stderr, "%s:", label);

    for (i = 0; i < n && i < 64; i++) {
        fprintf(stderr, " %02x", p[i]);
    }

    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}


static inline int
check_done(const char *name)
{
    if (check_failed) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, check_failed,
                check_count);
        return 1;
    }

    printf("%s: all %d checks passed\n", name, check_count);
    return 0;
}


#endif /* _CHECK_H_INCLUDED_ */
