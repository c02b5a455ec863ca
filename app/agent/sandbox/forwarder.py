"""The socket forwarder of AgentVine's agent runtime, as C source compiled into a static binary.

In an image that is not AgentVine's (a team's development image, docs/sandbox.md "Any image"),
nothing of the image can be relied on to expose the gateway's Unix socket on loopback: it may
have no socat, and socat is dynamically linked, so a copy of it would need its libraries (OpenSSL,
readline, libwrap) to match the image's glibc. This forwarder does one thing, links statically
(any Linux image can run it, whatever its libc) and is small enough to read in full.

``agentvine-forward PORT=SOCKET [PORT=SOCKET ...]`` binds and listens on 127.0.0.1:PORT for every
pair *before* it goes to the background: the parent exits 0 only once every port listens, so the
command after it can connect at once (no polling, unlike socat). Each accepted connection is
served by a child process that connects to SOCKET and relays bytes both ways, half-closes
included, like ``socat TCP-LISTEN:PORT,fork UNIX-CONNECT:SOCKET``. More pairs than the gateway's
are for the egress proxy, which is reached the same way (``AGENTVINE_FORWARDS``).
"""

from __future__ import annotations

__all__ = ["FORWARDER_C", "FORWARDER_NAME"]

FORWARDER_NAME = "agentvine-forward"

FORWARDER_C = r"""/* agentvine-forward: expose Unix sockets on 127.0.0.1 ports (see app/agent/sandbox/forwarder.py). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PAIRS 8

static const char *paths[MAX_PAIRS];

static int fail(const char *what, const char *arg) {
    fprintf(stderr, "agentvine-forward: %s %s: %s\n", what, arg, strerror(errno));
    return 71;
}

static int listen_on(const char *pair, int i) {
    char *end;
    const char *eq = strchr(pair, '=');
    long port = strtol(pair, &end, 10);
    if (eq == NULL || end != eq || port < 1 || port > 65535 || strlen(eq + 1) == 0
        || strlen(eq + 1) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "agentvine-forward: bad pair %s (want PORT=SOCKET)\n", pair);
        exit(64);
    }
    paths[i] = eq + 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0)
        exit(fail("cannot listen for", pair));
    return fd;
}

static int connect_unix(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    return fd;
}

static int write_all(int fd, const char *buf, ssize_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w;
        n -= w;
    }
    return 0;
}

/* Relay both ways until both sides have closed; an end of input half-closes the other side. */
static void relay(int a, int b) {
    static char buf[65536];
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    int open_ends = 2;
    while (open_ends > 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int to = i == 0 ? b : a;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                shutdown(to, SHUT_WR);
                p[i].fd = -1;
                open_ends--;
            } else if (write_all(to, buf, n) < 0) {
                return;
            }
        }
    }
}

int main(int argc, char **argv) {
    int fds[MAX_PAIRS], n = argc - 1;
    if (n < 1 || n > MAX_PAIRS) {
        fprintf(stderr, "usage: agentvine-forward PORT=SOCKET [PORT=SOCKET ...] (at most %d)\n", MAX_PAIRS);
        return 64;
    }
    for (int i = 0; i < n; i++) fds[i] = listen_on(argv[i + 1], i);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    if (pid < 0) return fail("cannot fork", "");
    if (pid > 0) return 0; /* every port listens: the entrypoint may go on */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) { /* hold no stdio of the container's (its output is the agent's stream) */
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        if (null > 2) close(null);
    }
    struct pollfd p[MAX_PAIRS];
    for (int i = 0; i < n; i++) p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    for (;;) {
        if (poll(p, (nfds_t)n, -1) < 0) continue;
        for (int i = 0; i < n; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            int c = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) continue;
            if (fork() == 0) {
                for (int j = 0; j < n; j++) close(fds[j]);
                int u = connect_unix(paths[i]);
                if (u >= 0) relay(c, u);
                _exit(0);
            }
            close(c);
        }
    }
}
"""
