/* source_stream — stream-record values of `replay --format stream`; see
 * source.h. */
#include "indexer/source.h"

#include <errno.h>
#include <stdio.h>

#include "base/jsonx.h"

bool source_is_record(json_t *v)
{
    return json_is_object(json_object_get(v, "dynamodb"));
}

/* A member naming a shard: a non-empty string, else NULL. */
static const char *shard_member(json_t *obj, const char *name, const char *dflt)
{
    const char *v = json_string_value(json_object_get(obj, name));

    return v && *v ? v : dflt;
}

/* A stream-record value: a record; a Lambda event or a GetRecords reply
 * ({"Records":[...]}); or a Lambda on-failure invocation record kept with
 * its event, as an S3 destination keeps it (DDBStreamBatchInfo.shardId, the
 * event in "payload", as an object or as its JSON text).  The shard comes
 * from a record's "shardId" (and "parentShardId"), else from the same
 * members of the event around it, else from DDBStreamBatchInfo.shardId:
 * the Streams API and Lambda put no shard in records or events. */
int source_stream_value(json_t *v, unsigned long line, source_record_cb *cb, void *arg, char *why,
                        size_t why_len)
{
    json_t *recs = json_object_get(v, "Records"), *r, *info = json_object_get(v,
                                                                             "DDBStreamBatchInfo");
    json_t *payload = NULL;
    const char *shard = NULL, *parent = NULL;
    size_t i;

    if (json_is_object(info)) {
        json_t *p = json_object_get(v, "payload");

        shard = shard_member(info, "shardId", NULL);
        if (json_is_string(p))
            payload = jsonx_loadb(json_string_value(p), json_string_length(p), 0, NULL);
        else if (json_is_object(p))
            payload = json_incref(p);
        recs = json_object_get(payload, "Records");
        if (!json_is_array(recs)) {
            json_decref(payload);
            snprintf(why, why_len, "a Lambda on-failure record without its event (\"payload\" "
                     "with \"Records\"): SQS and SNS destinations keep only the records' "
                     "position (DDBStreamBatchInfo); read them from the stream or a file that "
                     "holds them");
            return -EBADMSG;
        }
        v = payload;
    }
    shard = shard_member(v, "shardId", shard);
    parent = shard_member(v, "parentShardId", NULL);
    if (json_is_array(recs)) { /* a Lambda event, a GetRecords reply */
        json_array_foreach(recs, i, r) {
            if (!source_is_record(r)) {
                snprintf(why, why_len,
                         "Records[%zu] is not a stream record (no \"dynamodb\" object)", i);
                json_decref(payload);
                return -EBADMSG;
            }
        }
        json_array_foreach(recs, i, r) cb(arg, r, line, shard_member(r, "shardId", shard),
                                          shard_member(r, "parentShardId", parent));
        json_decref(payload);
        return 0;
    }
    if (!source_is_record(v)) {
        snprintf(why, why_len, "not a stream record (no \"dynamodb\" object) nor a Lambda "
                 "event (no \"Records\" array)");
        return -EBADMSG;
    }
    cb(arg, v, line, shard, parent);
    return 0;
}
