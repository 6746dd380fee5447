/* leasefleet — lease coordinators (daemon/lease.h) for tests: workers on
 * one test loop against DynamoDB Local (or a proxy in front of it), each
 * with a record of what it told the daemon. */
#ifndef DDB2ES_TEST_LEASEFLEET_H
#define DDB2ES_TEST_LEASEFLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/lease.h"
#include "tests/support/awsloop.h"

#define FLEET_MAX 8

/* What one worker's callbacks saw. */
struct fleet_log {
    int ready;           /* -1 until ready ran */
    char ready_why[512];
    unsigned gained, lost, yields, released;
    char last_lost_why[512];
    enum lease_state state;
    unsigned states;
    char state_why[512];
    uint64_t last_gained_ms, first_gained_ms;
    bool give_back;      /* yield: give the lease back at once */
    struct lease *l;
    struct fleet *f;
};

struct fleet {
    struct awsloop a;
    char table[128];
    struct lease *l[FLEET_MAX];
    struct fleet_log log[FLEET_MAX];
    size_t n;
};

/* Opens the loop against endpoint (NULL: DynamoDB Local) and names a fresh
 * lease table (not created). */
void fleet_open(struct fleet *f, const char *endpoint);
/* A worker (not started) with lease_duration d ms; its log is f->log[i]. */
struct lease *fleet_worker(struct fleet *f, const char *id, int64_t d, bool create_table);
/* lease_start, and runs the loop until ready ran; returns its status. */
int fleet_start(struct fleet *f, struct lease *l);
struct fleet_log *fleet_log_of(struct fleet *f, struct lease *l);
/* Runs the loop for ms. */
void fleet_run(struct fleet *f, long ms);
/* Runs the loop until pred holds (at most ms); returns whether it held. */
bool fleet_until(struct fleet *f, bool (*pred)(struct fleet *f, void *arg), void *arg, long ms);
/* Closes a worker (no release: its leases expire), runs the loop until it
 * is closed and frees it. */
void fleet_kill(struct fleet *f, struct lease *l);
/* Closes and frees every worker left, then the loop. */
void fleet_close(struct fleet *f);
/* Creates the lease table (as leasetab does) without a worker. */
void fleet_create_table(struct fleet *f);
/* Puts one free lease item (no owner) for shard id of ARN. */
void fleet_put_lease(struct fleet *f, const char *arn, const char *id, const char *parent);

#endif
