/* rfc3339 — the one reader and writer of RFC 3339 times. */
#ifndef DDB2ES_RFC3339_H
#define DDB2ES_RFC3339_H

#include <time.h>

#define RFC3339_LEN 20 /* "2024-05-17T15:09:54Z" */

/* "2024-05-17T15:09:54Z", with optional fractional seconds and a "Z",
 * "+HH:MM" or "-HH:MM" zone, read as UTC (timegm).  0 or -EINVAL. */
int rfc3339_parse(const char *s, time_t *out);

/* t as "YYYY-MM-DDTHH:MM:SSZ", clamped to 1970-01-01T00:00:00Z ..
 * 9999-12-31T23:59:59Z. */
void rfc3339_format(time_t t, char out[RFC3339_LEN + 1]);

#endif
