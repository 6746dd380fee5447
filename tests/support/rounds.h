/* rounds — how many rounds a randomized test runs: all of them, or a
 * twentieth under valgrind (`make test-valgrind` sets DDB2ES_VALGRIND),
 * where each round costs some fifty times more and the point is each
 * byte's definedness, not the count. */
#ifndef DDB2ES_TEST_ROUNDS_H
#define DDB2ES_TEST_ROUNDS_H

#include <stdlib.h>

static inline int test_rounds(int n)
{
    return getenv("DDB2ES_VALGRIND") && n >= 20 ? n / 20 : n;
}

#endif
