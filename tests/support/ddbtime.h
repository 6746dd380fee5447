/* ddbtime — time travel for end-to-end tests: the DynamoDB Local instance
 * that tests/run.sh starts under libfaketime (DDB2ES_TIMETRAVEL=1), its
 * clock, its shard rollover job, and daemons run on the same clock.
 *
 * The instance's wall clock is the real one plus an offset kept in a
 * control file ($DDB2ES_TEST_FAKETIME); libfaketime reads it at every clock
 * call, so a jump is seen at once.  Only ever moved forward.  Daemons
 * started with ddbtime_start read the same file, so the daemon and the
 * service agree on the time, as they do on AWS (daemon/shard.c compares a
 * shard id's creation time with its own wall clock).
 *
 * The rollover job (DDBLOCAL.md "Shards") closes every open shard older
 * than 4 h, at the instance's first request and then every 7.5 real
 * minutes: run.sh makes that first request and exports its time as
 * $DDB2ES_TEST_FAKETIME_T0.
 */
#ifndef DDB2ES_TEST_DDBTIME_H
#define DDB2ES_TEST_DDBTIME_H

#include <stdbool.h>

#include "tests/support/proc.h"

#define DDBTIME_ROLLOVER_EVERY_S 450   /* the job's period, real seconds */
#define DDBTIME_ROLLOVER_AGE_S (4 * 3600)

/* Skips the current test unless the instance runs; else points the
 * ddbclient calls and e2e_config at it. */
void ddbtime_need(void);

/* Tests that share the instance take the clock first: shared by those
 * whose jumps stay far below the 24 h retention (they do not hurt each
 * other's tables), alone (exclusive) by one that jumps past it, which
 * would trim every other table's records.  Blocks until granted; held
 * until the test process exits.  A shared taker waits 2 s first, so that
 * one started beside it that needs the clock alone goes first. */
void ddbtime_hold(bool alone);

/* The offset now, in seconds. */
long ddbtime_offset(void);
/* The instance's wall clock now: real time plus the offset. */
double ddbtime_now(void);
/* Moves the clock on by seconds (> 0): the control file is replaced
 * atomically, under a lock, so jumps made by tests running side by side
 * add up. */
void ddbtime_advance(long seconds);

/* Real time (epoch seconds) of the rollover job's first run after real
 * time t, by the job's period from $DDB2ES_TEST_FAKETIME_T0; 0 when T0 is
 * unknown. */
double ddbtime_next_rollover(double t);
/* Moves the clock so that every shard open now is older than 4 h at the
 * job's next run, and that run falls half-way through a minute of the
 * instance's clock (its records carry whole minutes: DDBLOCAL.md
 * "Records"), so records written a few seconds before and after it share
 * their ApproximateCreationDateTime.  Returns the real time of that run
 * (0 when unknown). */
double ddbtime_advance_past_rollover(void);

/* Starts `ddb2es run -c conf` with the test credentials, on the
 * instance's clock. */
void ddbtime_start(struct proc *p, const char *conf);

#endif
