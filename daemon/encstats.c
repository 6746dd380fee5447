#include "daemon/encstats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

struct entry {
    struct entry *next;
    char *name;
    struct encstats_counts c;
    struct encstats_limit limit;
};

static struct entry *entries;

static struct entry *find(const char *table)
{
    for (struct entry *e = entries; e; e = e->next)
        if (strcmp(e->name, table) == 0)
            return e;
    return NULL;
}

bool encstats_limit_take(struct encstats_limit *l, int64_t now_ms, uint64_t *held)
{
    if (l->said && now_ms - l->last_ms < ENCSTATS_SAY_EVERY_MS) {
        l->held++;
        return false;
    }
    *held = l->held;
    l->said = true;
    l->last_ms = now_ms;
    l->held = 0;
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The transform's on_encrypted hook (transform.h); arg is the entry. */
static void note(void *arg, const struct encitem *e, const char *what)
{
    struct entry *s = arg;
    struct log_ctx ctx = { .table = s->name };
    char more[64] = "";
    uint64_t held;

    s->c.items++;
    s->c.attributes_left_out += e->left_out;
    if (!e->failed)
        return;
    s->c.headers_failed++;
    if (!encstats_limit_take(&s->limit, now_ms(), &held))
        return;
    if (held)
        snprintf(more, sizeof(more), "; %" PRIu64 " more since the last line", held);
    logc_warn(&ctx,
              "%s: written by client-side encryption, but its header cannot be used (%s): only "
              "its attributes that are not binary are indexed (ddb2es_encrypted_headers_failed_"
              "total counts such items; this line comes once a minute at most%s)",
              what, e->why, more);
}

int encstats_attach(struct transform_cfg *tf, const char *table)
{
    struct entry *e = find(table);

    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e || !(e->name = strdup(table))) {
            free(e);
            return -ENOMEM;
        }
        e->next = entries;
        entries = e;
    }
    tf->on_encrypted = note;
    tf->encrypted_arg = e;
    return 0;
}

struct encstats_counts encstats_get(const char *table)
{
    struct entry *e = find(table);

    return e ? e->c : (struct encstats_counts){ 0 };
}

void encstats_free_all(void)
{
    while (entries) {
        struct entry *next = entries->next;

        free(entries->name);
        free(entries);
        entries = next;
    }
}
