/* notify — the systemd notification protocol without libsystemd: one
 * datagram of "KEY=VALUE\n..." lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET ("/path" or "@abstract"), and the watchdog settings
 * ($WATCHDOG_USEC, $WATCHDOG_PID).  No loop, no allocation, no logging:
 * callers decide what a failure means (a service manager that went away is
 * not a reason to stop indexing). */
#ifndef DDB2ES_NOTIFY_H
#define DDB2ES_NOTIFY_H

#include <stdint.h>

/* Sends state (e.g. "READY=1\nSTATUS=following 2 tables") to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset or empty (not run by
 * a service manager: nothing to do), or -errno: -EINVAL for an address that
 * is neither "/path" nor "@name" or is too long, -EMSGSIZE, or what
 * socket/sendto failed with.  The variable is left in place so later calls
 * reach the same socket. */
int notify_send(const char *state);
/* notify_send to the given address instead of $NOTIFY_SOCKET (NULL or ""
 * returns 0). */
int notify_send_to(const char *addr, const char *state);

/* The watchdog interval the service manager expects, like
 * sd_watchdog_enabled(): 1 with *usec set when $WATCHDOG_USEC is a positive
 * number and $WATCHDOG_PID is unset or names this process; 0 when there is no
 * watchdog for this process (*usec = 0); -EINVAL when a variable is
 * malformed.  Send "WATCHDOG=1" at half of *usec. */
int notify_watchdog_usec(uint64_t *usec);

#endif
