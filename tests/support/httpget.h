/* httpget — plain blocking HTTP/1.1 requests to the daemon's own endpoints
 * (metrics, health) on 127.0.0.1, for tests. */
#ifndef DDB2ES_TEST_HTTPGET_H
#define DDB2ES_TEST_HTTPGET_H

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int httpget_free_port(void);
/* GET or HEAD on 127.0.0.1:port: *status gets the HTTP status (0 when
 * nothing answered); returns the body (caller frees; "" on failure). */
char *httpget(int port, const char *method, const char *path, long *status);
/* The value of one sample of GET /metrics (labels in prom_find's canonical
 * form, "" for none), or -1 when the endpoint or the sample is missing. */
double httpget_metric(int port, const char *name, const char *labels);

#endif
