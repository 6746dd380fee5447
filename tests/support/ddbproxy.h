/* ddbproxy — a forwarding proxy in front of DynamoDB Local, for what it
 * cannot be made to do: records the service sends in a shape no DynamoDB
 * item has, and refusals (throttling) for a while.  Every request goes to the upstream as it came (DynamoDB Local
 * does not check the signature's host); in GetRecords replies a chosen text
 * can be replaced, and the x-amz-crc32 header is recomputed, as a service
 * that sent that text would have it.  Blocking, on fakehttp's thread: for
 * tests only. */
#ifndef DDB2ES_TEST_DDBPROXY_H
#define DDB2ES_TEST_DDBPROXY_H

struct ddbproxy;

struct ddbproxy *ddbproxy_start(const char *upstream);
void ddbproxy_stop(struct ddbproxy *p);
const char *ddbproxy_url(const struct ddbproxy *p);
/* From now on, every occurrence of from in a GetRecords reply becomes to
 * (both copied).  NULL from: no rewriting. */
void ddbproxy_rewrite(struct ddbproxy *p, const char *from, const char *to);
/* GetRecords replies rewritten so far. */
unsigned ddbproxy_rewritten(struct ddbproxy *p);
/* From now on every request is answered with status and body (copied)
 * without reaching the upstream, as a service refusing them would (a
 * throttled table); status 0 forwards again. */
void ddbproxy_refuse(struct ddbproxy *p, int status, const char *body);
/* Requests refused so far. */
unsigned ddbproxy_refused(struct ddbproxy *p);
/* Requests forwarded to the upstream so far. */
unsigned ddbproxy_forwarded(struct ddbproxy *p);

#endif
