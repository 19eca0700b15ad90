#ifndef UVCHAT_CHIREDIS_SHIM_H
#define UVCHAT_CHIREDIS_SHIM_H

/* hiredis 0.14 (Debian's libhiredis-dev): the asynchronous client and its libuv adapter, which runs the client's
   socket on our loop through one uv_poll_t (freed in its uv_close callback by the adapter itself). */
#include <hiredis.h>
#include <async.h>
#include <sds.h>
#include <adapters/libuv.h>

/* The adapter's attach is a static function in a header; one wrapper so that Swift calls it in one place. */
static inline int uvc_redis_attach(redisAsyncContext *ac, uv_loop_t *loop) { return redisLibuvAttach(ac, loop); }

/* Bytes the client holds unwritten: the bound on what a slow or stalled Redis can make us keep. */
static inline size_t uvc_redis_pending_output(const redisAsyncContext *ac) {
    return ac->c.obuf ? sdslen(ac->c.obuf) : 0;
}

static inline int uvc_redis_connected(const redisAsyncContext *ac) { return (ac->c.flags & REDIS_CONNECTED) != 0; }
#endif
