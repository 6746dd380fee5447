#include "daemon/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

char *statedir_path(const char *state_dir, const char *name)
{
    size_t la = strlen(state_dir), lb = strlen(name);
    char *s = malloc(la + lb + 2);

    if (s) {
        memcpy(s, state_dir, la);
        s[la] = '/';
        memcpy(s + la + 1, name, lb + 1);
    }
    return s;
}

/* ---- lock ---------------------------------------------------------------- */

/* mkdir -p with mode 0700 for what it creates; the result must be a directory. */
static int make_dirs(const char *dir)
{
    struct stat stb;
    char *p = strdup(dir);
    int rc = 0;

    if (!p)
        return -ENOMEM;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;

        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            rc = -errno;
        *s = c;
        if (c == '\0')
            break;
    }
    if (rc == 0 && stat(dir, &stb) < 0)
        rc = -errno;
    else if (rc == 0 && !S_ISDIR(stb.st_mode))
        rc = -ENOTDIR;
    free(p);
    return rc;
}

int statedir_lock(const char *state_dir, int *fd_out)
{
    return statedir_lock_named(state_dir, STATEDIR_LOCK_FILE, fd_out);
}

int statedir_lock_named(const char *state_dir, const char *name, int *fd_out)
{
    char *path = NULL, pid[32];
    int fd = -1, rc, n;

    rc = make_dirs(state_dir);
    if (rc < 0)
        return rc;
    path = statedir_path(state_dir, name);
    if (!path)
        return -ENOMEM;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
        close(fd);
        return rc;
    }
    /* For the operator only; the flock is what counts. */
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* ignored: a full disk must not stop the lock */
    }
    *fd_out = fd;
    return 0;
}

bool statedir_lock_held(const char *state_dir, const char *name)
{
    char *path = statedir_path(state_dir, name);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    bool held = false;

    free(path);
    if (fd < 0)
        return false;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        held = errno == EWOULDBLOCK;
    close(fd);
    return held;
}

void statedir_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only descriptor releases the flock */
}
