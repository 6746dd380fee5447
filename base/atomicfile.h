/* atomicfile — replacing a file whole: a crash leaves the old or the new
 * file, never a mix (the checkpoint file, replay's progress file). */
#ifndef DDB2ES_ATOMICFILE_H
#define DDB2ES_ATOMICFILE_H

#include <stddef.h>

/* Writes data to tmp (mode 0600), fsyncs it, renames it over path and
 * fsyncs dir (the directory of both), so a crash leaves the old or the new
 * file whole; the tmp file is removed on failure.  Blocking: call it on the
 * thread pool from the loop.  0 or -errno. */
int atomicfile_write(const char *path, const char *tmp, const char *dir, const char *data,
                     size_t len);

#endif
