#include "daemon/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send_to(const char *addr, const char *state)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t alen = addr ? strlen(addr) : 0;
    socklen_t salen;
    ssize_t n;
    int fd, rc = 1;

    if (alen == 0)
        return 0;
    if ((addr[0] != '/' && addr[0] != '@') || alen < 2 || alen > sizeof(sa.sun_path) - 1)
        return -EINVAL;
    memcpy(sa.sun_path, addr, alen);
    if (addr[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, no terminator */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + alen + (addr[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    if (n < 0)
        rc = -errno;
    else if ((size_t)n != strlen(state))
        rc = -EMSGSIZE;
    close(fd);
    return rc;
}

int notify_send(const char *state)
{
    return notify_send_to(getenv("NOTIFY_SOCKET"), state);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || !*s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

int notify_watchdog_usec(uint64_t *usec)
{
    const char *u = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
    uint64_t v, pid;

    *usec = 0;
    if (!u || !*u)
        return 0;
    if (parse_u64(u, &v) < 0 || v == 0)
        return -EINVAL;
    if (p && *p) {
        if (parse_u64(p, &pid) < 0 || pid == 0)
            return -EINVAL;
        if (pid != (uint64_t)getpid())
            return 0; /* meant for another process (e.g. our parent) */
    }
    *usec = v;
    return 1;
}
