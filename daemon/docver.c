#include "daemon/docver.h"

uint64_t docver_next(struct docver *st, int64_t created)
{
    if (created < 0)
        created = 0;
    if (created > DOCVER_SECOND_MAX)
        created = DOCVER_SECOND_MAX;
    if (created > st->second) {
        st->second = created;
        st->ordinal = 0;
    } else if (st->ordinal < DOCVER_ORDINAL_MAX) {
        st->ordinal++;
    } else if (st->second < DOCVER_SECOND_MAX) {
        st->second++; /* borrow the next second, see docver.h */
        st->ordinal = 0;
    } /* else: saturated at the bound; unreachable for real clocks */
    return ((uint64_t)st->second << DOCVER_ORDINAL_BITS) | st->ordinal;
}

int docver_cmp(const struct docver *a, const struct docver *b)
{
    if (a->second != b->second)
        return a->second < b->second ? -1 : 1;
    return (a->ordinal > b->ordinal) - (a->ordinal < b->ordinal);
}

uint64_t docver_below(int64_t s)
{
    if (s < 1)
        s = 1;
    if (s > DOCVER_SECOND_MAX)
        s = DOCVER_SECOND_MAX;
    return ((uint64_t)s << DOCVER_ORDINAL_BITS) - 1;
}
