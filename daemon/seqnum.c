#include "daemon/seqnum.h"

#include <string.h>

bool seqnum_valid(const char *s)
{
    size_t n = 0;

    if (!s)
        return false;
    for (; s[n]; n++)
        if (s[n] < '0' || s[n] > '9' || n >= SEQNUM_MAX)
            return false;
    return n >= SEQNUM_MIN;
}

int seqnum_cmp(const char *a, const char *b)
{
    size_t la, lb;
    int c;

    while (*a == '0')
        a++;
    while (*b == '0')
        b++;
    la = strlen(a);
    lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    c = memcmp(a, b, la);
    return (c > 0) - (c < 0);
}
