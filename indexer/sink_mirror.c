/* sink_mirror — the mirror of `ddb2es rebuild`: an index's actions written a
 * second time, for another index, into the same bulk request; the owner
 * hears once, when both copies finished (sink.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "indexer/sink_int.h"

#define MAX_MIRROR_TABLES 256

static struct mirror *find_on(const struct sink *s, const char *live)
{
    struct list *pos;

    list_foreach(pos, &s->mirrors) {
        struct mirror *m = list_entry(pos, struct mirror, link);

        if (m->on && strcmp(m->live, live) == 0)
            return m;
    }
    return NULL;
}

int sink_mirror_set(struct sink *s, const char *live, const char *to)
{
    struct mirror *m = find_on(s, live);
    struct list *pos;

    if (to && strcmp(to, live) == 0)
        return -EINVAL;
    if (m && to && strcmp(m->to, to) == 0)
        return 0;
    if (m) {
        m->on = false;
        s->nmirrors_on--;
        log_info("index %s: no longer mirrored to %s", m->live, m->to);
    }
    if (!to)
        return 0;
    /* An earlier mirror to the same index is turned on again, not made anew. */
    list_foreach(pos, &s->mirrors) {
        m = list_entry(pos, struct mirror, link);
        if (strcmp(m->live, live) == 0 && strcmp(m->to, to) == 0)
            goto on;
    }
    m = calloc(1, sizeof(*m));
    if (!m || !(m->live = strdup(live)) || !(m->to = strdup(to))) {
        if (m)
            free(m->live);
        free(m);
        return -ENOMEM;
    }
    list_push_tail(&s->mirrors, &m->link);
on:
    m->on = true;
    s->nmirrors_on++;
    log_info("index %s: every action is mirrored to %s", live, to);
    return 0;
}

const char *sink_mirror_of(const struct sink *s, const char *live)
{
    const struct mirror *m = s->nmirrors_on && live ? find_on(s, live) : NULL;

    return m ? m->to : NULL;
}

void sink_mirror_note(struct sink *s, const char *table)
{
    struct mirror_count *c;

    if (!table)
        table = "";
    for (size_t i = 0; i < s->nmcounts; i++)
        if (strcmp(s->mcounts[i].table, table) == 0) {
            s->mcounts[i].n++;
            return;
        }
    if (s->nmcounts == MAX_MIRROR_TABLES)
        return;
    c = realloc(s->mcounts, (s->nmcounts + 1) * sizeof(*c));
    if (!c)
        return;
    s->mcounts = c;
    c[s->nmcounts++] = (struct mirror_count){ .table = table, .n = 1 };
}

uint64_t sink_mirror_actions(const struct sink *s, const char *table)
{
    for (size_t i = 0; i < s->nmcounts; i++)
        if (strcmp(s->mcounts[i].table, table) == 0)
            return s->mcounts[i].n;
    return 0;
}

static bool unfinished(enum sink_outcome o)
{
    return o == SINK_CANCELED || o == SINK_EXPIRED;
}

bool sink_pair_report(struct item *it, enum sink_outcome *outcome)
{
    struct pair *p = it->pair;

    if (it->is_mirror)
        p->mirror = *outcome;
    else
        p->live = *outcome;
    it->pair = NULL;
    if (--p->pending > 0)
        return false;
    /* The checkpoint may pass the action only once the new index has it too. */
    *outcome = !unfinished(p->live) && unfinished(p->mirror) ? p->mirror : p->live;
    free(p);
    return true;
}

void sink_mirrors_free(struct sink *s)
{
    while (!list_empty(&s->mirrors)) {
        struct mirror *m = list_entry(s->mirrors.next, struct mirror, link);

        list_remove(&m->link);
        free(m->live);
        free(m->to);
        free(m);
    }
    free(s->mcounts);
    s->mcounts = NULL;
    s->nmcounts = 0;
}
