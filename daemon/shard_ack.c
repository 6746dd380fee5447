/* shard_ack — a shard's documents back from the sink: each outcome counted,
 * the record acknowledged on the shard's tracker (ack.h), and the
 * checkpoint moved past every record finished in order (ckpt.h).  The
 * sink's done callback is shard_doc_done; the shard's own loop (shard.c)
 * is told only that a document finished (shard_acked), to read on. */
#include "daemon/shard.h"

#include <string.h>

#include "base/log.h"
#include "daemon/ack.h"
#include "daemon/app.h"
#include "daemon/ckpt.h"
#include "daemon/reader_int.h"

static void count(struct reader_stats *st, enum doc_op op, enum sink_outcome o)
{
    switch (o) {
    case SINK_INDEXED:
        if (op == DOC_DELETE)
            st->docs_deleted++;
        else
            st->docs_indexed++;
        break;
    case SINK_STALE:
        st->docs_stale++;
        break;
    case SINK_GONE:
        st->docs_gone++;
        break;
    case SINK_DLQ:
        st->docs_dlq++;
        break;
    case SINK_SUPERSEDED:
    case SINK_CANCELED:
    case SINK_EXPIRED: /* the daemon sets no send_by: never happens */
        break;
    }
}

void shard_doc_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome o, void *arg)
{
    struct shard *s = owner;
    int rc;

    count(reader_counters(s->reader), op, o);
    if (s->pending_docs)
        s->pending_docs--;
    if (s->lost || s->detached) {
        /* Its lease went: the record is acknowledged by whoever reads the
         * shard now.  The last document back lets the shard go. */
        if (s->detached)
            reader_shard_stopped(s->reader, s);
        return;
    }
    /* Canceled (the daemon is stopping) is not finished: the record is read
     * again after the restart. */
    if (o == SINK_CANCELED || o == SINK_EXPIRED)
        return;
    rc = ack_done(s->ack, (int64_t)ticket);
    if (rc < 0) {
        struct log_ctx c = shard_log_ctx(s);

        logc_error(&c, "finished document %llu was not in flight (%s)",
                   (unsigned long long)ticket, strerror(-rc));
    }
    shard_acked(s);
}

void shard_checkpoint(struct shard *s)
{
    struct app *app = reader_app(s->reader);
    struct docver ver;
    const char *seq = ack_checkpoint(s->ack, &ver);

    if (seq && s->ck) {
        int rc = ckpt_shard_advance(app->ckpt, s->ck, seq, &ver, app->now());

        if (rc == 0 && s->ck->skip_before)
            ckpt_shard_skip_before(app->ckpt, s->ck, 0); /* it resumes after seq now */
        if (rc < 0) {
            struct log_ctx c = shard_log_ctx(s);

            logc_error(&c, "checkpoint %s refused (%s)", seq, strerror(-rc));
        }
    }
}
