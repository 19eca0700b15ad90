import CHiredis
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// One connection to Redis over hiredis's asynchronous API, driven by our loop through hiredis's libuv adapter: no
/// thread, no lock, no blocking call. hiredis 0.14 has neither timeouts nor reconnects, so this adds them: a connect
/// or a reply that takes longer than `timeoutMillis` ends the connection, and a lost connection is tried again with
/// a doubling backoff (100 ms to 5 s, with jitter). Commands are pipelined (each call appends to hiredis's output
/// buffer, written when the socket is writable); the buffer is bounded by `maxPendingBytes`, past which commands are
/// refused rather than held.
///
/// Replies come back in command order, so handlers wait in a FIFO and the C callback carries no Swift context of
/// its own. A subscriber connection (`subscribe`) gets every message through `onMessage`.
final class RedisClient {
    enum State: Equatable { case down, connecting, ready }

    let endpoint: RedisEndpoint
    private let loop: EventLoop
    private let name: String
    private let auth: (user: String?, password: [UInt8])?
    private let timeoutMillis: UInt64
    let maxPendingBytes: Int
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private(set) var state: State = .down
    /// Handlers of commands sent and not yet answered, oldest first (nil: a command whose reply is not wanted).
    private var handlers: [((RedisValue) -> Void)?] = []
    private var handlerHead = 0
    /// ms: when the oldest unanswered command was sent (a health check's clock), or when the connect began.
    private var waitingSince: UInt64 = 0
    private var backoffMillis: UInt64 = 100
    private var retryTimer: LoopTimer?
    private var closed = false
    /// Up and ready (after AUTH and the setup the owner sends from `onReady`).
    var onReady: () -> Void = {}
    /// The connection ended (the reason is for the log; it never holds data).
    var onDown: (String) -> Void = { _ in }
    /// A pub/sub message: channel and payload, lent for the call.
    var onMessage: ((UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void)?
    private(set) var reconnects: UInt64 = 0
    private(set) var refusedCommands: UInt64 = 0
    private var subscriptions: [String] = []

    init(loop: EventLoop, endpoint: RedisEndpoint, name: String, user: String?, password: [UInt8]?,
         timeoutMillis: UInt64, maxPendingBytes: Int = 16 << 20) {
        self.loop = loop
        self.endpoint = endpoint
        self.name = name
        self.auth = password.map { (user, $0) }
        self.timeoutMillis = timeoutMillis
        self.maxPendingBytes = maxPendingBytes
    }

    /// Unanswered commands.
    var pendingCount: Int { handlers.count - handlerHead }

    /// Bytes hiredis holds unwritten.
    var pendingBytes: Int { context.map { Int(uvc_redis_pending_output($0)) } ?? 0 }

    // MARK: - Connecting

    func connect() {
        guard !closed, context == nil else { return }
        let ctx: UnsafeMutablePointer<redisAsyncContext>?
        switch endpoint {
        case .tcp(let host, let port): ctx = redisAsyncConnect(host, Int32(port))
        case .unix(let path): ctx = redisAsyncConnectUnix(path)
        }
        guard let ctx else { return scheduleRetry("out of memory") }
        if ctx.pointee.err != 0 {
            let reason = RedisClient.errorText(ctx)
            redisAsyncFree(ctx)
            return scheduleRetry(reason)
        }
        guard uvc_redis_attach(ctx, loop.raw) == REDIS_OK else {
            redisAsyncFree(ctx)
            return scheduleRetry("attach failed")
        }
        ctx.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        redisAsyncSetConnectCallback(ctx) { ac, status in
            guard let ac, let data = ac.pointee.data else { return }
            let client = Unmanaged<RedisClient>.fromOpaque(data).takeUnretainedValue()
            if status == REDIS_OK {
                client.connected()
            } else {
                // hiredis frees the context after this callback.
                client.lost(RedisClient.errorText(UnsafeMutablePointer(mutating: ac)))
            }
        }
        redisAsyncSetDisconnectCallback(ctx) { ac, status in
            guard let ac, let data = ac.pointee.data else { return }
            let client = Unmanaged<RedisClient>.fromOpaque(data).takeUnretainedValue()
            client.lost(status == REDIS_OK ? "closed" : RedisClient.errorText(UnsafeMutablePointer(mutating: ac)))
        }
        context = ctx
        state = .connecting
        waitingSince = loop.nowMillis
    }

    private func connected() {
        guard state == .connecting, let ctx = context else { return }
        if let auth {
            var args: [[UInt8]] = [Array("AUTH".utf8)]
            if let user = auth.user { args.append(Array(user.utf8)) }
            args.append(auth.password)
            sendNow(ctx, args) { [unowned self] reply in
                // From inside a reply callback hiredis allows a disconnect (not a free): it closes after the callbacks.
                if case .error = reply, let c = self.context { redisAsyncDisconnect(c) }
            }
        }
        sendNow(ctx, [Array("CLIENT".utf8), Array("SETNAME".utf8), Array(name.utf8)], nil)
        state = .ready
        backoffMillis = 100
        waitingSince = loop.nowMillis
        for channel in subscriptions { sendSubscribe(ctx, channel) }
        onReady()
    }

    /// The context is gone (hiredis frees it after the callback that brought us here, or we freed it).
    private func lost(_ reason: String) {
        let wasUp = context != nil
        context = nil
        state = .down
        failHandlers()
        if closed {
            retryTimer?.close()
            retryTimer = nil
            return
        }
        guard wasUp else { return }
        onDown(reason)
        scheduleRetry(reason)
    }

    private func scheduleRetry(_ reason: String) {
        state = .down
        guard !closed else { return }
        if retryTimer == nil {
            retryTimer = try? loop.timer { [unowned self] in
                reconnects &+= 1
                connect()
            }
        }
        // Jitter of up to a quarter, so that nodes that lost Redis together do not come back in lockstep.
        let delay = backoffMillis + UInt64.random(in: 0...(backoffMillis / 4))
        backoffMillis = min(backoffMillis * 2, 5000)
        try? retryTimer?.start(after: delay)
    }

    /// Calls every waiting handler with an error: their commands will not be answered.
    private func failHandlers() {
        let waiting = handlers[handlerHead...]
        handlers.removeAll(keepingCapacity: false)
        handlerHead = 0
        for handler in waiting { handler?(.error("connection lost")) }
    }

    /// Ends the connection now (a health check failed, AUTH was refused); it is tried again after the backoff.
    func dropConnection(_ reason: String) {
        guard let ctx = context else { return }
        // Out of any hiredis callback (a timer, or a reply handler, which hiredis allows to disconnect): freeing runs
        // the disconnect callback when the connection was up, and the adapter closes its poll handle.
        let wasReady = uvc_redis_connected(ctx) != 0
        ctx.pointee.data = nil
        context = nil
        state = .down
        redisAsyncFree(ctx)
        failHandlers()
        if wasReady { onDown(reason) }
        scheduleRetry(reason)
    }

    /// The owner's periodic check: a connect or a reply that takes too long ends the connection; an idle one is
    /// pinged so that a dead peer is noticed.
    func healthCheck(now: UInt64) {
        switch state {
        case .down:
            return
        case .connecting:
            if now >= waitingSince + timeoutMillis { dropConnection("connect timed out") }
        case .ready:
            if pendingCount > 0 && onMessage == nil {
                if now >= waitingSince + timeoutMillis { dropConnection("no reply within the timeout") }
            } else if onMessage == nil {
                send([Array("PING".utf8)], nil)
            }
            // A subscriber cannot PING in RESP2 without a reply shaped like a message: its socket's errors, and the
            // command connection's health (whose loss drops it too), tell us enough.
        }
    }

    /// Closes for good (shutdown). `gracefully`: what is queued is written and answered first (hiredis then
    /// closes), within the timeout.
    func close(gracefully: Bool = false) {
        closed = true
        retryTimer?.close()
        retryTimer = nil
        guard let ctx = context else { return }
        if gracefully && state == .ready {
            redisAsyncDisconnect(ctx)
            // A Redis that does not answer must not keep the process from exiting.
            retryTimer = try? loop.timer { [unowned self] in
                retryTimer?.close()
                retryTimer = nil
                close(gracefully: false)
            }
            try? retryTimer?.start(after: min(timeoutMillis, 1000))
            return
        }
        ctx.pointee.data = nil
        context = nil
        state = .down
        redisAsyncFree(ctx)
        failHandlers()
    }

    // MARK: - Commands

    /// Appends one command to the pipeline; false when the connection is not ready or its output is over the bound
    /// (the handler is then not called).
    @discardableResult
    func send(_ args: [[UInt8]], _ handler: ((RedisValue) -> Void)?) -> Bool {
        guard state == .ready, let ctx = context else { return false }
        guard Int(uvc_redis_pending_output(ctx)) < maxPendingBytes else {
            refusedCommands &+= 1
            return false
        }
        return sendNow(ctx, args, handler)
    }

    @discardableResult
    private func sendNow(_ ctx: UnsafeMutablePointer<redisAsyncContext>, _ args: [[UInt8]],
                         _ handler: ((RedisValue) -> Void)?) -> Bool {
        if pendingCount == 0 { waitingSince = loop.nowMillis }
        let rc = RedisClient.withArgv(args) { argc, argv, lengths in
            redisAsyncCommandArgv(ctx, { ac, reply, _ in
                guard let ac, let data = ac.pointee.data else { return }
                Unmanaged<RedisClient>.fromOpaque(data).takeUnretainedValue().replied(reply)
            }, nil, argc, argv, lengths)
        }
        guard rc == REDIS_OK else { return false }
        handlers.append(handler)
        return true
    }

    private func replied(_ raw: UnsafeMutableRawPointer?) {
        guard handlerHead < handlers.count else { return }
        let handler = handlers[handlerHead]
        handlers[handlerHead] = nil
        handlerHead += 1
        if handlerHead == handlers.count {
            handlers.removeAll(keepingCapacity: true)
            handlerHead = 0
        } else if handlerHead >= 1024 && handlerHead * 2 >= handlers.count {
            handlers.removeFirst(handlerHead)
            handlerHead = 0
        }
        waitingSince = loop.nowMillis
        let value = raw.map { RedisClient.value($0.assumingMemoryBound(to: redisReply.self)) } ?? .error("connection lost")
        handler?(value)
    }

    /// SUBSCRIBE on this connection (now, and again after every reconnect); messages reach `onMessage`.
    func subscribe(_ channel: String) {
        if !subscriptions.contains(channel) { subscriptions.append(channel) }
        if state == .ready, let ctx = context { sendSubscribe(ctx, channel) }
    }

    private func sendSubscribe(_ ctx: UnsafeMutablePointer<redisAsyncContext>, _ channel: String) {
        // hiredis keeps a subscription's callback and calls it for every message on the channel; its private data
        // (non-nil) tells it from a command's.
        _ = RedisClient.withArgv([Array("SUBSCRIBE".utf8), Array(channel.utf8)]) { argc, argv, lengths in
            redisAsyncCommandArgv(ctx, { ac, reply, _ in
                guard let ac, let data = ac.pointee.data, let reply else { return }
                Unmanaged<RedisClient>.fromOpaque(data).takeUnretainedValue()
                    .message(reply.assumingMemoryBound(to: redisReply.self))
            }, UnsafeMutableRawPointer(bitPattern: 1), argc, argv, lengths)
        }
    }

    private func message(_ reply: UnsafeMutablePointer<redisReply>) {
        let r = reply.pointee
        guard r.type == REDIS_REPLY_ARRAY, r.elements == 3, let items = r.element,
              let kind = items[0], kind.pointee.type == REDIS_REPLY_STRING, kind.pointee.len == 7,
              let channel = items[1], let payload = items[2], payload.pointee.type == REDIS_REPLY_STRING
        else { return }   // "subscribe" confirmations
        let c = UnsafeRawBufferPointer(start: channel.pointee.str, count: Int(channel.pointee.len))
        let p = UnsafeRawBufferPointer(start: payload.pointee.str, count: Int(payload.pointee.len))
        onMessage?(c, p)
    }

    // MARK: - Conversions

    private static func withArgv(_ args: [[UInt8]],
                                 _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Int32)
        -> Int32 {
        let count = args.count
        let argv = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: count)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: count)
        defer {
            argv.deallocate()
            lengths.deallocate()
        }
        // hiredis copies the arguments into its output buffer before it returns, so pointers into the arrays are
        // only needed for the call.
        func fill(_ i: Int) -> Int32 {
            if i == count { return body(Int32(count), argv, lengths) }
            return args[i].withUnsafeBufferPointer { bytes in
                argv[i] = UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                    .assumingMemoryBound(to: CChar.self)
                lengths[i] = bytes.count
                return fill(i + 1)
            }
        }
        return fill(0)
    }

    static func value(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(Array(UnsafeRawBufferPointer(start: r.str, count: Int(r.len))))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                if let item = r.element[i] { items.append(value(item)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }

    private static func errorText(_ ctx: UnsafeMutablePointer<redisAsyncContext>) -> String {
        withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "error \(ctx.pointee.err)" : String(decoding: bytes, as: UTF8.self)
        }
    }
}

@available(*, unavailable)
extension RedisClient: Sendable {}
