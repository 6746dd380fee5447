/* statedir — the state directory: its lock, and the paths of the files in
 * it. */
#ifndef DDB2ES_STATEDIR_H
#define DDB2ES_STATEDIR_H

#include <stdbool.h>

#define STATEDIR_LOCK_FILE "lock"

/* Creates state_dir (mode 0700, parents too) if missing, then takes an
 * exclusive non-blocking flock on state_dir/lock (created 0600) and writes
 * this process id into it.  0 with *fd_out set (keep it open while running;
 * the lock goes with the process), -EWOULDBLOCK when another process (or
 * another open of the file) holds it: the caller exits 73; else -errno. */
int statedir_lock(const char *state_dir, int *fd_out);
/* The same lock on state_dir/name: `ddb2es replay` locks its own file, so it
 * runs beside `ddb2es run` on one state directory. */
int statedir_lock_named(const char *state_dir, const char *name, int *fd_out);
/* True when another process holds the lock of state_dir/name (probed
 * without writing to the file; a missing file is not held). */
bool statedir_lock_held(const char *state_dir, const char *name);
/* Releases the lock taken by statedir_lock; a negative fd is a no-op. */
void statedir_unlock(int fd);

/* "state_dir/name" (malloc'ed), or NULL when out of memory. */
char *statedir_path(const char *state_dir, const char *name);

#endif
