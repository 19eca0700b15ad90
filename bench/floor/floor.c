/* The floor for `make bench`: the least a server can do to pass uvchat-bench's scenarios, so that each of uvchat's
 * rows can be stated as a ratio to it. One thread on epoll; the system calls, the HTTP upgrade (SHA-1 and base64
 * from libcrypto, loaded by its soname), unmasking, and forwarding each frame to the partner with no validation,
 * no limits, no JSON and no protocol beyond the first FIFO pairing (`{"type":"paired"}`). Frames for one receiver
 * are collected during an iteration and written once at its end (uWebSockets' "corked" style). A close frame is
 * answered and the TCP connection closed at once, server first (RFC 6455 section 7.1.1). `GET` of anything else
 * answers www/index.html, keep-alive.
 *
 * Not a server anyone should run: a benchmark fixture. Usage: floor PORT WWW_DIR (port 0 picks one); it prints
 * `msg=listening port=N` on stderr as uvchatd does, and stops on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* From libcrypto (linked as -l:libcrypto.so.3, so no development headers are needed). */
unsigned char *SHA1(const unsigned char *data, size_t count, unsigned char *digest);
int EVP_EncodeBlock(unsigned char *out, const unsigned char *in, int count);

enum { HTTP = 0, WS = 1 };

/* Everything a connection holds while it sits idle: 48 bytes, in one array indexed by descriptor. The input and
   output buffers exist only while bytes wait. */
struct conn {
    int peer;               /* the partner's descriptor + 1, 0 none (so that calloc's zero pages need no setup) */
    uint8_t state, dirty, open, pad;
    uint8_t *in; uint32_t inlen;   /* a partial head or frame carried to the next read */
    uint8_t *out; uint32_t outlen, outcap, outsent;
};

static struct conn *conns;
static int nconns;
static int epfd, waiting = -1;
static int *dirty, ndirty;
static uint8_t rbuf[65536];
static char *page; static size_t pagelen;
static volatile sig_atomic_t stop;

static void on_signal(int s) { (void)s; stop = 1; }

static void queue(int fd, const void *bytes, size_t n) {
    struct conn *c = &conns[fd];
    if (c->outlen + n > c->outcap) {
        uint32_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outlen + n) cap *= 2;
        c->out = realloc(c->out, cap);
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, bytes, n);
    c->outlen += (uint32_t)n;
    if (!c->dirty) { c->dirty = 1; dirty[ndirty++] = fd; }
}

static void queue_frame(int fd, uint8_t opcode, const uint8_t *payload, size_t n) {
    uint8_t h[4];
    size_t hl = 2;
    h[0] = 0x80 | opcode;
    if (n < 126) h[1] = (uint8_t)n;
    else { h[1] = 126; h[2] = (uint8_t)(n >> 8); h[3] = (uint8_t)n; hl = 4; }
    queue(fd, h, hl);
    queue(fd, payload, n);
}

static void drop(int fd) {
    struct conn *c = &conns[fd];
    if (!c->open) return;
    if (c->peer) conns[c->peer - 1].peer = 0;
    if (waiting == fd) waiting = -1;
    free(c->in); free(c->out);
    memset(c, 0, sizeof *c);
    close(fd);   /* also leaves the epoll set */
}

static void flush_one(int fd) {
    struct conn *c = &conns[fd];
    c->dirty = 0;
    if (!c->open || c->outsent == c->outlen) return;
    ssize_t n = send(fd, c->out + c->outsent, c->outlen - c->outsent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) { drop(fd); return; }
    if (n > 0) c->outsent += (uint32_t)n;
    if (c->outsent == c->outlen) {
        c->outsent = c->outlen = 0;
        free(c->out);   /* an idle connection holds no buffer */
        c->out = NULL;
        c->outcap = 0;
    } else {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.fd = fd };
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    }
}

static const char *find_header(const char *head, size_t len, const char *name) {
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < len; i++) {
        if ((i == 0 || head[i - 1] == '\n') && strncasecmp(head + i, name, nl) == 0) {
            const char *v = head + i + nl;
            while (*v == ' ') v++;
            return v;
        }
    }
    return NULL;
}

/* One complete request head; returns 0, or -1 if the connection was dropped. */
static int request(int fd, const char *head, size_t len) {
    const char *key = find_header(head, len, "sec-websocket-key:");
    if (!key) {
        char h[160];
        int hl = snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n\r\n", pagelen);
        queue(fd, h, (size_t)hl);
        queue(fd, page, pagelen);
        return 0;
    }
    size_t kl = 0;
    while (key + kl < head + len && key[kl] != '\r') kl++;
    unsigned char material[128], digest[20], accept[32];
    if (kl > 64) { drop(fd); return -1; }
    memcpy(material, key, kl);
    memcpy(material + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    SHA1(material, kl + 36, digest);
    EVP_EncodeBlock(accept, digest, 20);
    char h[160];
    int hl = snprintf(h, sizeof h, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    queue(fd, h, (size_t)hl);
    conns[fd].state = WS;
    static const uint8_t paired[] = "{\"type\":\"paired\"}";
    if (waiting >= 0 && waiting != fd) {
        conns[fd].peer = waiting + 1;
        conns[waiting].peer = fd + 1;
        queue_frame(waiting, 1, paired, sizeof paired - 1);
        queue_frame(fd, 1, paired, sizeof paired - 1);
        waiting = -1;
    } else {
        waiting = fd;
    }
    return 0;
}

/* Handles what `bytes` holds; returns how many bytes were used (the rest is an incomplete head or frame), or -1
   if the connection was dropped. */
static long consume(int fd, uint8_t *bytes, size_t len) {
    size_t at = 0;
    while (at < len) {
        struct conn *c = &conns[fd];
        if (c->state == HTTP) {
            uint8_t *end = memmem(bytes + at, len - at, "\r\n\r\n", 4);
            if (!end) return (long)at;
            size_t hl = (size_t)(end + 4 - (bytes + at));
            if (request(fd, (const char *)bytes + at, hl) < 0) return -1;
            at += hl;
            continue;
        }
        if (len - at < 6) return (long)at;
        uint8_t *f = bytes + at;
        uint8_t opcode = f[0] & 0x0F;
        size_t n = f[1] & 0x7F, hl = 2;
        if (n == 126) { n = (size_t)f[2] << 8 | f[3]; hl = 4; }
        else if (n == 127) { n = 0; for (int i = 0; i < 8; i++) n = n << 8 | f[2 + i]; hl = 10; }
        if (len - at < hl + 4 + n) return (long)at;
        uint8_t *mask = f + hl, *p = f + hl + 4;
        for (size_t i = 0; i < n; i++) p[i] ^= mask[i & 3];
        at += hl + 4 + n;
        if (opcode == 8) {
            queue_frame(fd, 8, p, n < 2 ? n : 2);
            flush_one(fd);
            drop(fd);
            return -1;
        }
        if (opcode == 9) queue_frame(fd, 10, p, n);
        else if ((opcode == 1 || opcode == 2 || opcode == 0) && c->peer) queue_frame(c->peer - 1, f[0] & 0x0F, p, n);
    }
    return (long)at;
}

static void readable(int fd) {
    struct conn *c = &conns[fd];
    for (;;) {
        uint8_t *buf = rbuf;
        size_t have = 0;
        if (c->inlen) { memcpy(rbuf, c->in, c->inlen); have = c->inlen; free(c->in); c->in = NULL; c->inlen = 0; }
        ssize_t n = recv(fd, buf + have, sizeof rbuf - have, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) { drop(fd); return; }
        if (n < 0) {
            if (have) { c->in = malloc(have); memcpy(c->in, rbuf, have); c->inlen = (uint32_t)have; }
            return;
        }
        size_t total = have + (size_t)n;
        long used = consume(fd, buf, total);
        if (used < 0) return;
        if ((size_t)used < total) {
            size_t rest = total - (size_t)used;
            if (rest > 60000) { drop(fd); return; }
            c->in = malloc(rest);
            memcpy(c->in, buf + used, rest);
            c->inlen = (uint32_t)rest;
        }
        if ((size_t)n < sizeof rbuf - have) return;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: floor PORT WWW_DIR\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    char path[4096];
    snprintf(path, sizeof path, "%s/index.html", argv[2]);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    fseek(f, 0, SEEK_END); pagelen = (size_t)ftell(f); fseek(f, 0, SEEK_SET);
    page = malloc(pagelen);
    if (fread(page, 1, pagelen, f) != pagelen) { perror(path); return 1; }
    fclose(f);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    nconns = (int)rl.rlim_cur;
    conns = calloc((size_t)nconns, sizeof *conns);
    dirty = calloc((size_t)nconns, sizeof *dirty);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);   /* accepted sockets inherit it on Linux */
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0) { perror("listen"); return 1; }
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    fprintf(stderr, "msg=listening port=%d\n", ntohs(a.sin_port));

    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, events[256];
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    while (!stop) {
        int n = epoll_wait(epfd, events, 256, 1000);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                for (int k = 0; k < 128; k++) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    if (c >= nconns) { close(c); continue; }
                    conns[c].open = 1;
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(epfd, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            if (!conns[fd].open) continue;
            if (events[i].events & EPOLLOUT) {
                flush_one(fd);
                if (conns[fd].open && conns[fd].outlen == 0) {
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = fd };
                    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &cev);
                }
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable(fd);
        }
        for (int i = 0; i < ndirty; i++) if (conns[dirty[i]].dirty) flush_one(dirty[i]);
        ndirty = 0;
    }
    return 0;
}
