import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A libuv timer whose handle holds a retained reference to this object from `init` until the handle's close
/// callback, which releases it and frees the handle: the action can never run on freed memory.
final class LoopTimer {
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private let action: () -> Void
    private var closed = false

    init(loop: EventLoop, _ action: @escaping () -> Void) throws {
        self.action = action
        handle = .allocate(capacity: 1)
        let rc = uv_timer_init(loop.raw, handle)
        if rc != 0 {
            handle.deallocate()
            throw UVError(rc)
        }
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// (Re)starts the timer: first after `ms`, then every `repeatMs` (0: once).
    func start(after ms: UInt64, repeat repeatMs: UInt64 = 0) throws {
        guard !closed else { return }
        try UVError.check(uv_timer_start(handle, { t in
            let timer = Unmanaged<LoopTimer>.fromOpaque(t!.pointee.data).takeUnretainedValue()
            timer.action()
            EventLoop.from(t!.pointee.loop).flushPending()
        }, ms, repeatMs))
    }

    var isActive: Bool { !closed && uv_is_active(uvc_timer_as_handle(handle)) != 0 }

    func close() {
        guard !closed else { return }
        closed = true
        uv_close(uvc_timer_as_handle(handle)) { h in
            Unmanaged<LoopTimer>.fromOpaque(h!.pointee.data).release()
            UnsafeMutableRawPointer(h!).deallocate()
        }
    }
}

/// A signal watcher, owned the same way as `LoopTimer`.
final class LoopSignal {
    private let handle: UnsafeMutablePointer<uv_signal_t>
    private let action: (Int32) -> Void
    private var closed = false

    init(loop: EventLoop, signum: Int32, _ action: @escaping (Int32) -> Void) throws {
        self.action = action
        handle = .allocate(capacity: 1)
        let rc = uv_signal_init(loop.raw, handle)
        if rc != 0 {
            handle.deallocate()
            throw UVError(rc)
        }
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        try UVError.check(uv_signal_start(handle, { h, signum in
            let signal = Unmanaged<LoopSignal>.fromOpaque(h!.pointee.data).takeUnretainedValue()
            signal.action(signum)
            EventLoop.from(h!.pointee.loop).flushPending()
        }, signum))
    }

    func close() {
        guard !closed else { return }
        closed = true
        uv_close(uvc_signal_as_handle(handle)) { h in
            Unmanaged<LoopSignal>.fromOpaque(h!.pointee.data).release()
            UnsafeMutableRawPointer(h!).deallocate()
        }
    }
}

/// The async handle behind `StopHandle`; it does not keep the loop alive.
final class LoopAsync {
    fileprivate let handle: UnsafeMutablePointer<uv_async_t>
    private let action: () -> Void
    /// Shared with every `StopHandle` copy, so that one made before the close knows the handle is gone.
    let state = StopHandle.State()

    init(loop: EventLoop, _ action: @escaping () -> Void) throws {
        self.action = action
        handle = .allocate(capacity: 1)
        let rc = uv_async_init(loop.raw, handle) { h in
            let async = Unmanaged<LoopAsync>.fromOpaque(h!.pointee.data).takeUnretainedValue()
            async.action()
            EventLoop.from(h!.pointee.loop).flushPending()
        }
        if rc != 0 {
            handle.deallocate()
            throw UVError(rc)
        }
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        uv_unref(uvc_async_as_handle(handle))
        state.open(handle)
    }

    var stopHandle: StopHandle { StopHandle(state: state) }

    func close() {
        guard state.close() else { return }
        uv_close(uvc_async_as_handle(handle)) { h in
            Unmanaged<LoopAsync>.fromOpaque(h!.pointee.data).release()
            UnsafeMutableRawPointer(h!).deallocate()
        }
    }
}

/// Wakes the loop from another thread and starts the drain, through libuv's one thread-safe call. Safe to call
/// after the server has stopped (it then does nothing).
public struct StopHandle: Sendable {
    /// The handle pointer behind a mutex: `stop()` from another thread and the loop's close cannot race.
    final class State: @unchecked Sendable {
        private var mutex = pthread_mutex_t()
        private var handle: UnsafeMutablePointer<uv_async_t>?

        init() { pthread_mutex_init(&mutex, nil) }
        deinit { pthread_mutex_destroy(&mutex) }

        func open(_ h: UnsafeMutablePointer<uv_async_t>) {
            pthread_mutex_lock(&mutex)
            handle = h
            pthread_mutex_unlock(&mutex)
        }

        /// Forgets the handle; false when it was already forgotten.
        func close() -> Bool {
            pthread_mutex_lock(&mutex)
            defer { pthread_mutex_unlock(&mutex) }
            guard handle != nil else { return false }
            handle = nil
            return true
        }

        func send() {
            pthread_mutex_lock(&mutex)
            if let handle { _ = uv_async_send(handle) }
            pthread_mutex_unlock(&mutex)
        }
    }

    let state: State?
    public func stop() { state?.send() }
}
