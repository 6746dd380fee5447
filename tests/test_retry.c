#include <criterion/criterion.h>
#include <limits.h>

#include "base/backoff.h"
#include "aws/retry.h"

TestSuite(retry, .timeout = 5);

Test(retry, backoff_cap_doubles_up_to_the_maximum)
{
    cr_assert_eq(backoff_cap_ms(100, 10000, 0), 100);
    cr_assert_eq(backoff_cap_ms(100, 10000, 1), 200);
    cr_assert_eq(backoff_cap_ms(100, 10000, 6), 6400);
    cr_assert_eq(backoff_cap_ms(100, 10000, 7), 10000, "capped");
    cr_assert_eq(backoff_cap_ms(100, 10000, UINT_MAX), 10000, "no overflow after many failures");
    cr_assert_eq(backoff_cap_ms(500, 300, 0), 300, "a base above the cap is capped");
}
