/* notify: sd_notify datagrams to path and abstract sockets, and the
 * watchdog variables. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/notify.h"

TestSuite(notify, .timeout = 10);

/* Binds a datagram socket at addr ("/path" or "@name"); returns the fd. */
static int bind_dgram(const char *addr)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = strlen(addr);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = 2 };

    cr_assert(fd >= 0);
    memcpy(sa.sun_path, addr, n);
    if (addr[0] == '@')
        sa.sun_path[0] = '\0';
    else
        unlink(addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa,
                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
                 0, "bind %s: %s", addr, strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char got[4096];
    ssize_t n = recv(fd, got, sizeof(got) - 1, 0);

    cr_assert(n >= 0, "no datagram: %s", strerror(errno));
    got[n] = '\0';
    cr_assert_str_eq(got, want);
}

static void path_in_tmp(char *out, size_t len, const char *name)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(out, len, "%s/%s-%d", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
}

Test(notify, sends_to_a_path_socket)
{
    char path[108];
    int fd;

    path_in_tmp(path, sizeof(path), "notify");
    fd = bind_dgram(path);
    cr_assert_eq(notify_send_to(path, "READY=1\nSTATUS=following 2 tables"), 1);
    expect_datagram(fd, "READY=1\nSTATUS=following 2 tables");
    close(fd);
    unlink(path);
}

Test(notify, sends_to_an_abstract_socket)
{
    char name[64];
    int fd;

    snprintf(name, sizeof(name), "@ddb2es-test-notify-%d", (int)getpid());
    fd = bind_dgram(name);
    cr_assert_eq(notify_send_to(name, "WATCHDOG=1"), 1);
    expect_datagram(fd, "WATCHDOG=1");
    close(fd);
}

Test(notify, follows_NOTIFY_SOCKET_and_keeps_it)
{
    char name[64];
    int fd;

    snprintf(name, sizeof(name), "@ddb2es-test-env-%d", (int)getpid());
    fd = bind_dgram(name);
    setenv("NOTIFY_SOCKET", name, 1);
    cr_assert_eq(notify_send("READY=1"), 1);
    cr_assert_eq(notify_send("STOPPING=1"), 1, "the variable stays for later messages");
    expect_datagram(fd, "READY=1");
    expect_datagram(fd, "STOPPING=1");
    close(fd);
}

Test(notify, without_a_socket_nothing_is_sent)
{
    unsetenv("NOTIFY_SOCKET");
    cr_assert_eq(notify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    cr_assert_eq(notify_send("READY=1"), 0);
}

Test(notify, bad_addresses_are_errors)
{
    char path[108];
    char longname[200];

    cr_assert_eq(notify_send_to("relative/path", "READY=1"), -EINVAL);
    cr_assert_eq(notify_send_to("@", "READY=1"), -EINVAL);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(notify_send_to(longname, "READY=1"), -EINVAL);
    path_in_tmp(path, sizeof(path), "nobody-listens");
    unlink(path);
    cr_assert_eq(notify_send_to(path, "READY=1"), -ENOENT);
}

Test(notify, watchdog_settings)
{
    uint64_t usec = 7;
    char pid[32];

    unsetenv("WATCHDOG_PID");
    unsetenv("WATCHDOG_USEC");
    cr_assert_eq(notify_watchdog_usec(&usec), 0);
    cr_assert_eq(usec, 0);

    setenv("WATCHDOG_USEC", "400000", 1);
    cr_assert_eq(notify_watchdog_usec(&usec), 1);
    cr_assert_eq(usec, 400000);

    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    cr_assert_eq(notify_watchdog_usec(&usec), 1, "meant for this process");
    snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    cr_assert_eq(notify_watchdog_usec(&usec), 0, "meant for another process");
    cr_assert_eq(usec, 0);

    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "soon", 1);
    cr_assert_eq(notify_watchdog_usec(&usec), -EINVAL);
    setenv("WATCHDOG_USEC", "0", 1);
    cr_assert_eq(notify_watchdog_usec(&usec), -EINVAL);
    setenv("WATCHDOG_USEC", "-5", 1);
    cr_assert_eq(notify_watchdog_usec(&usec), -EINVAL);
}
