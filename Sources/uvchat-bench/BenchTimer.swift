import CLibUV

/// A libuv timer that runs a closure; the scenarios use a handful, none per message.
final class BenchTimer {
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private let action: () -> Void

    init(_ bench: BenchLoop, after milliseconds: UInt64, repeat interval: UInt64 = 0, keepsLoopAlive: Bool = true,
         _ action: @escaping () -> Void) {
        handle = .allocate(capacity: 1)
        self.action = action
        uv_timer_init(bench.loop, handle)
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(handle, { timer in
            Unmanaged<BenchTimer>.fromOpaque(timer!.pointee.data).takeUnretainedValue().action()
        }, milliseconds, interval)
        if !keepsLoopAlive { uv_unref(uvc_timer_as_handle(handle)) }
    }

    func cancel() { uv_timer_stop(handle) }

    deinit {
        // The scenarios end with uv_stop and process exit, so a timer outlives its loop only then; stopping
        // it here keeps libuv from calling into freed memory should a scenario drop one early.
        uv_timer_stop(handle)
    }
}
