/* source — the files `ddb2es replay --file` reads, turned into records and
 * keys (daemon/replay.h says what each format holds and how it is sent):
 *   source_files.c   the file list: a file, a directory of data files, or a
 *                    DynamoDB export's manifest; the export's time
 *   source_lines.c   reading them in turn through zlib (plain or gzip)
 *   source_stream.c  a stream-record value: a record, a Lambda event or a
 *                    GetRecords reply, a Lambda on-failure record with its
 *                    event; each record with the shard the file names
 *   source_keys.c    an item's key attributes, and the key of the item a
 *                    dead-letter entry is about
 * Nothing here submits, versions or logs per record: the caller does.
 */
#ifndef DDB2ES_SOURCE_H
#define DDB2ES_SOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "base/buf.h"
#include "indexer/doc.h"
#include "indexer/transform.h"

#define SOURCE_LINE_MAX (64u << 20) /* one input line (or one Lambda event file) */

/* The input files, and where the reading stands. */
struct source_files {
    char **paths;
    size_t npaths, cur;
    gzFile gz;
    int64_t total_bytes, bytes_before; /* all files; the files already read */
    struct buf in;
    size_t off;
    unsigned long lineno;
    bool file_eof;
    int64_t export_time;
    char why[1024];         /* what a failing call below found */
};

void source_files_init(struct source_files *f);

/* --file PATH: a file, or a directory (an export's: manifest-files.json and
 * data/, or any directory of data files); with export, the export's time
 * from its manifest-summary.json, else read_time (> 0).  0, or -EINVAL (no
 * time: a usage error), -EBADMSG (a malformed manifest), -ENOENT, -ENOMEM,
 * another -errno, with why set (but for -ENOMEM). */
int source_files_resolve(struct source_files *f, const char *path, bool export,
                         int64_t read_time);
/* "2024-05-01T12:00:00Z" (fraction and offset allowed) or epoch seconds.
 * 0 or -EINVAL. */
int source_parse_time(const char *s, int64_t *out);
/* Frees the list and closes the file being read (and f->in). */
void source_files_close(struct source_files *f);

/* Closes the current file (if any) and opens the next one.  1 opened, 0 no
 * more files, -EIO with why set. */
int source_open_next(struct source_files *f);
/* Reads more of the current file into f->in (NUL-terminated), moving out
 * what f->off has passed.  0; -EBADMSG the input is malformed at line
 * f->lineno + 1 (why says how); -ENOMEM; -EIO with why set. */
int source_fill(struct source_files *f);
/* The next line of the files, read on into the next file at the end of
 * one: *line (in f->in, valid until the next call) and *len without the
 * blanks around it (nor a CR before the LF); f->lineno is its number.  1;
 * 0 after the last file; or source_fill's or source_open_next's error
 * (-EBADMSG at line f->lineno + 1, -ENOMEM, -EIO with why set). */
int source_next_line(struct source_files *f, char **line, size_t *len);
/* The JSON value of a line as source_next_line gave it (len > 0): the line
 * alone or, when lambda_ok and the first line opens an object that is not
 * JSON alone (a Lambda event file), the whole file as one document
 * (bounded by the reader's cap).  The value, *at its line; NULL with *err
 * -EBADMSG (the input is malformed at line *at, why says how), -ENOMEM or
 * -EIO (why set). */
json_t *source_line_value(struct source_files *f, char *line, size_t len, bool lambda_ok,
                          unsigned long *at, int *err);
/* The exit code of a reading error rc of the calls above: 65 (-EBADMSG),
 * 70 (-ENOMEM, why then says "out of memory") or 74. */
int source_exit_code(struct source_files *f, int rc);
/* The input bytes read so far (of all files). */
int64_t source_done_bytes(const struct source_files *f);

/* A stream record: an object with a "dynamodb" object. */
bool source_is_record(json_t *v);
/* One record of a stream-record value, with its shard and that shard's
 * parent as the file names them (NULL: not named). */
typedef void source_record_cb(void *arg, json_t *rec, unsigned long line, const char *shard,
                              const char *parent);
/* A stream-record value (see source_stream.c): cb for each record, in
 * order.  0, or -EBADMSG with what is wrong in why (then no record of a
 * Records array was given to cb). */
int source_stream_value(json_t *v, unsigned long line, source_record_cb *cb, void *arg, char *why,
                        size_t why_len);

/* The table's key schema. */
struct source_keys {
    char *hash_key, *range_key; /* may hold NUL: their lengths say where they end */
    size_t hash_key_len, range_key_len;
    char hash_type, range_type; /* 'S', 'N' or 'B' from DescribeTable; 0 unknown */
    const struct transform_cfg *tf; /* the table's document rules */
    struct doc scratch;     /* a key turned into an _id, to check an _id read back */
};

/* The key schema from a DescribeTable reply ({"Table":{"KeySchema",
 * "AttributeDefinitions"}}): the names (copies, which may hold NUL) and the
 * types of ks's hash and range keys, those ks holds already kept.  0,
 * -ENOENT (no hash key) or -ENOMEM. */
int source_keys_describe(struct source_keys *ks, const json_t *reply);
/* The key attributes of item (DynamoDB JSON), a new object. */
json_t *source_key_of(const struct source_keys *ks, json_t *item);
/* The key of the item a dead-letter entry (meta, and its doc when there is
 * one, from dlq_parse) is about, a new object, or NULL when it cannot be
 * had; *digest_like when the key was read back from an _id that may be a
 * SHA-256 digest. */
json_t *source_dlq_key(struct source_keys *ks, json_t *meta, const char *doc, size_t doc_len,
                       bool *digest_like);
/* Whether the key attribute name is hmac'd by the document rules. */
bool source_key_hmac_named(const struct source_keys *ks, const char *name);

#endif
