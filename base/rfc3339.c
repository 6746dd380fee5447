#include "base/rfc3339.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

static bool digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int rfc3339_parse(const char *s, time_t *out)
{
    struct tm tm = { 0 };
    int y, mo, d, h, mi, sec, zh = 0, zm = 0, sign = 0;
    time_t t;

    if (!s || strlen(s) < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return -EINVAL;
    s += 19;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return -EINVAL;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'Z' || *s == 'z')
        s++;
    else if (*s == '+' || *s == '-') {
        sign = *s == '+' ? 1 : -1;
        if (!digits(s + 1, 2, &zh) || s[3] != ':' || !digits(s + 4, 2, &zm))
            return -EINVAL;
        s += 6;
    } else
        return -EINVAL;
    if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || zh > 23 ||
        zm > 59)
        return -EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *out = t - sign * (zh * 3600 + zm * 60);
    return 0;
}

void rfc3339_format(time_t t, char out[RFC3339_LEN + 1])
{
    struct tm tm;

    if (t < 0)
        t = 0;
    if (t > (time_t)253402300799) /* 9999-12-31T23:59:59Z */
        t = (time_t)253402300799;
    gmtime_r(&t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
