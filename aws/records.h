/* records — a GetRecords reply, one record at a time.
 *
 * A reply {"Records":[{...},...],"NextShardIterator":"..."} of 1 MB becomes a
 * jansson tree of ~13 MB (every attribute value is an object with its own
 * hash table).  records_scan() only finds where each record's text starts
 * and ends (strings, escapes and nesting are followed; nothing is decoded),
 * so the caller parses one record at a time and never holds more than one
 * record's tree.  Each byte is still parsed by jansson exactly once, and a
 * malformed record fails its own parse.
 *
 * Pure: no I/O.
 */
#ifndef DDB2ES_RECORDS_H
#define DDB2ES_RECORDS_H

#include <stddef.h>

struct records_span {
    size_t off, len; /* one record's JSON text inside the reply */
};

struct records_page {
    struct records_span *span; /* n records in order (heap; kept by records_scan for reuse) */
    size_t n, cap;
    char *next_iter;           /* NextShardIterator (heap), NULL when absent or null */
    size_t bad_off;            /* after -EPROTO: where the text stops being readable */
};

/* Fills page from the reply body (page starts zeroed or from an earlier
 * scan; its memory is reused).  Members other than Records and
 * NextShardIterator are skipped.  Returns 0, -EPROTO when the text is not
 * such an object, or -ENOMEM.  After -EPROTO, page->n counts the records
 * that were whole before the text broke, and bad_off is the offset where
 * the broken part starts (next_iter is set only if it came before it). */
int records_scan(const char *body, size_t len, struct records_page *page);
void records_page_free(struct records_page *page); /* the memory; page is zeroed */

#endif
