#ifndef UVCHAT_CLIBUV_SHIM_H
#define UVCHAT_CLIBUV_SHIM_H

#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/epoll.h>

/* libuv's handle types share a common prefix; C code casts between them freely.
   Swift cannot, so these helpers do the casts in one reviewed place. */

static inline uv_handle_t *uvc_tcp_as_handle(uv_tcp_t *h) { return (uv_handle_t *)h; }
static inline uv_stream_t *uvc_tcp_as_stream(uv_tcp_t *h) { return (uv_stream_t *)h; }
static inline uv_tcp_t *uvc_stream_as_tcp(uv_stream_t *s) { return (uv_tcp_t *)s; }
static inline uv_handle_t *uvc_stream_as_handle(uv_stream_t *s) { return (uv_handle_t *)s; }
static inline uv_handle_t *uvc_timer_as_handle(uv_timer_t *h) { return (uv_handle_t *)h; }
static inline uv_handle_t *uvc_signal_as_handle(uv_signal_t *h) { return (uv_handle_t *)h; }
static inline uv_handle_t *uvc_check_as_handle(uv_check_t *h) { return (uv_handle_t *)h; }
static inline uv_handle_t *uvc_prepare_as_handle(uv_prepare_t *h) { return (uv_handle_t *)h; }
static inline uv_handle_t *uvc_udp_as_handle(uv_udp_t *h) { return (uv_handle_t *)h; }
static inline uv_handle_t *uvc_async_as_handle(uv_async_t *h) { return (uv_handle_t *)h; }
static inline uv_handle_t *uvc_poll_as_handle(uv_poll_t *h) { return (uv_handle_t *)h; }
static inline uv_handle_t *uvc_idle_as_handle(uv_idle_t *h) { return (uv_handle_t *)h; }

static inline const struct sockaddr *uvc_sockaddr_in(const struct sockaddr_in *a) { return (const struct sockaddr *)a; }
static inline const struct sockaddr *uvc_sockaddr_in6(const struct sockaddr_in6 *a) { return (const struct sockaddr *)a; }
static inline const struct sockaddr *uvc_sockaddr_storage(const struct sockaddr_storage *a) { return (const struct sockaddr *)a; }

/* SIG_IGN is a macro cast Swift cannot import. */
static inline void uvc_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/* Sockets driven through uv_poll_t: the few system calls the server makes itself, each returning what libuv's own
   calls return (a count, or a negative error that is -errno, the UV_E* value on Unix). EINTR is retried here. */

/* Declared here because glibc shows accept4 only under _GNU_SOURCE, which a module import cannot set. */
extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/* What every accepted connection wants, set once on the listener: Linux copies TCP_NODELAY to each accepted socket
   (one setsockopt per listener instead of one per connection). TCP_DEFER_ACCEPT is not used: a connection that
   sends nothing would stay invisible to the server for seconds (its handshake deadline, the per-address caps and
   the descriptor count would not see it), which hostile clients would enjoy more than the server. */
static inline void uvc_listener_options(int fd) {
    int on = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* A non-blocking, close-on-exec listening socket bound to `addr`, or -errno. */
static inline int uvc_listen_socket(const struct sockaddr *addr, int backlog, int reuse_port) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    /* Several processes bound to one port, the kernel spreading new connections among them (a cluster node per core). */
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, addr, len) != 0 || listen(fd, backlog) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    uvc_listener_options(fd);
    return fd;
}

/* An inherited listening socket (socket activation): non-blocking and listening, or -errno. */
static inline int uvc_adopt_listen_socket(int fd, int backlog) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return -errno;
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (listen(fd, backlog) != 0) return -errno;
    uvc_listener_options(fd);
    return 0;
}

/* One accepted connection, non-blocking and close-on-exec, with its peer address; or -errno (-EAGAIN: none). */
static inline int uvc_accept(int fd, struct sockaddr_storage *peer) {
    for (;;) {
        socklen_t len = sizeof *peer;
        int r = accept4(fd, (struct sockaddr *)peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

static inline int uvc_local_port(int fd) {
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) return -errno;
    if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static inline long uvc_recv(int fd, void *buf, size_t len) {
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0) return (long)n;
        if (errno != EINTR) return -errno;
    }
}

/* MSG_NOSIGNAL: a peer that is gone is an EPIPE for this call, never a SIGPIPE for the process. */
static inline long uvc_send(int fd, const void *buf, size_t len) {
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return (long)n;
        if (errno != EINTR) return -errno;
    }
}

/* The connections' own epoll set (EventLoop): libuv watches its descriptor with one poll handle, and the server
   registers each connection here with the connection's object as the event's data. That is one epoll_ctl per
   connection (uv_poll_init checks a descriptor with an add and a remove and sets it non-blocking with an ioctl;
   stopping a poll handle removes it again) and no libuv handle per connection. */
enum {
    UVC_EPOLLIN = EPOLLIN, UVC_EPOLLOUT = EPOLLOUT, UVC_EPOLLERR = EPOLLERR, UVC_EPOLLHUP = EPOLLHUP,
    UVC_EPOLL_ADD = EPOLL_CTL_ADD, UVC_EPOLL_MOD = EPOLL_CTL_MOD
};

static inline int uvc_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Adds (UVC_EPOLL_ADD) or changes (UVC_EPOLL_MOD) what `fd` is watched for; `owner` comes back with its events. */
static inline int uvc_epoll_set(int epfd, int op, int fd, unsigned events, void *owner) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.ptr = owner;
    return epoll_ctl(epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

/* Up to `max` (at most 256) ready descriptors, without waiting: each one's owner and events; or -errno. struct
   epoll_event is packed on x86_64, so Swift gets the two fields in arrays of its own. */
static inline int uvc_epoll_ready(int epfd, void **owners, unsigned *events, int max) {
    struct epoll_event ready[256];
    if (max > 256) max = 256;
    int n;
    do { n = epoll_wait(epfd, ready, max, 0); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        owners[i] = ready[i].data.ptr;
        events[i] = ready[i].events;
    }
    return n;
}

static inline int uvc_shutdown_write(int fd) { return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno; }

static inline int uvc_close_fd(int fd) { return close(fd) == 0 ? 0 : -errno; }

/* A descriptor held in reserve, given up for a moment to accept and drop connections when none is left. */
static inline int uvc_reserve_fd(void) { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

#endif
