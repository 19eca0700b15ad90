#ifndef UVCHAT_CLIBUV_SHIM_H
#define UVCHAT_CLIBUV_SHIM_H

#include <uv.h>
#include <signal.h>
#include <sys/resource.h>

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

static inline const struct sockaddr *uvc_sockaddr_in(const struct sockaddr_in *a) { return (const struct sockaddr *)a; }
static inline const struct sockaddr *uvc_sockaddr_in6(const struct sockaddr_in6 *a) { return (const struct sockaddr *)a; }
static inline const struct sockaddr *uvc_sockaddr_storage(const struct sockaddr_storage *a) { return (const struct sockaddr *)a; }

/* SIG_IGN is a macro cast Swift cannot import. */
static inline void uvc_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

#endif
