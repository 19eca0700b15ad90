import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A libuv handle whose `data` holds a retained reference to its Swift owner from `open` until the handle's close
/// callback, which releases the owner and frees the handle: an action can never run on freed memory. The timer,
/// signal and async owners below share this; each adds its start call and its callback.
struct OwnedHandle<Handle> {
    let handle: UnsafeMutablePointer<Handle>
    private(set) var isClosed = false

    /// Allocates and initialises the handle (`initialize` is the `uv_*_init` call); `owner` is retained by it.
    init(owner: AnyObject, _ initialize: (UnsafeMutablePointer<Handle>) -> Int32) throws {
        handle = .allocate(capacity: 1)
        let rc = initialize(handle)
        if rc != 0 {
            handle.deallocate()
            throw UVError(rc)
        }
        generic.pointee.data = Unmanaged.passRetained(owner).toOpaque()
    }

    var generic: UnsafeMutablePointer<uv_handle_t> { UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self) }

    /// The owner a callback's handle belongs to.
    static func owner<Owner: AnyObject>(_ h: UnsafeMutablePointer<Handle>?, as: Owner.Type) -> Owner {
        let data = UnsafeMutableRawPointer(h!).assumingMemoryBound(to: uv_handle_t.self).pointee.data!
        return Unmanaged<Owner>.fromOpaque(data).takeUnretainedValue()
    }

    mutating func close() {
        guard !isClosed else { return }
        isClosed = true
        uv_close(generic) { h in
            Unmanaged<AnyObject>.fromOpaque(h!.pointee.data).release()
            UnsafeMutableRawPointer(h!).deallocate()
        }
    }
}

/// A libuv timer that runs its action on the loop, then writes what the action queued.
final class LoopTimer {
    private var handle: OwnedHandle<uv_timer_t>!
    private let action: () -> Void

    init(loop: EventLoop, _ action: @escaping () -> Void) throws {
        self.action = action
        handle = try OwnedHandle(owner: self) { uv_timer_init(loop.raw, $0) }
    }

    /// (Re)starts the timer: first after `ms`, then every `repeatMs` (0: once).
    func start(after ms: UInt64, repeat repeatMs: UInt64 = 0) throws {
        guard !handle.isClosed else { return }
        try UVError.check(uv_timer_start(handle.handle, { t in
            OwnedHandle.owner(t, as: LoopTimer.self).action()
            EventLoop.from(t!.pointee.loop).flushPending()
        }, ms, repeatMs))
    }

    var isActive: Bool { !handle.isClosed && uv_is_active(handle.generic) != 0 }

    func close() { handle.close() }
}

/// A signal watcher that runs its action on the loop.
final class LoopSignal {
    private var handle: OwnedHandle<uv_signal_t>!
    private let action: (Int32) -> Void

    init(loop: EventLoop, signum: Int32, _ action: @escaping (Int32) -> Void) throws {
        self.action = action
        handle = try OwnedHandle(owner: self) { uv_signal_init(loop.raw, $0) }
        try UVError.check(uv_signal_start(handle.handle, { h, signum in
            OwnedHandle.owner(h, as: LoopSignal.self).action(signum)
            EventLoop.from(h!.pointee.loop).flushPending()
        }, signum))
    }

    func close() { handle.close() }
}

/// The async handle behind `StopHandle`; it does not keep the loop alive.
final class LoopAsync {
    private var handle: OwnedHandle<uv_async_t>!
    private let action: () -> Void
    /// Shared with every `StopHandle` copy, so that one made before the close knows the handle is gone.
    let state = StopHandle.State()

    init(loop: EventLoop, _ action: @escaping () -> Void) throws {
        self.action = action
        handle = try OwnedHandle(owner: self) { h in
            uv_async_init(loop.raw, h) { h in
                OwnedHandle.owner(h, as: LoopAsync.self).action()
                EventLoop.from(h!.pointee.loop).flushPending()
            }
        }
        uv_unref(handle.generic)
        state.open(handle.handle)
    }

    var stopHandle: StopHandle { StopHandle(state: state) }

    func close() {
        guard state.close() else { return }
        handle.close()
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
