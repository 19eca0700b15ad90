/// Output buffers lent to sockets while they have bytes to write and taken back once all is written, so an idle
/// connection holds no buffer. Bounded in bytes and keeps no very large buffer: it holds what a busy loop iteration
/// needs and never grows without bound.
struct OutputPool {
    static let maxBytes = 2 * 1024 * 1024
    static let maxBufferCapacity = 64 * 1024
    /// What a buffer starts with when the pool is empty: room for a typical batch of chat frames.
    static let initialCapacity = 2048

    private var buffers: [[UInt8]] = []
    private var bytes = 0

    /// Gives `buffer` (empty, no storage) a buffer from the pool, or room for a typical batch.
    @inline(__always)
    mutating func lend(_ buffer: inout [UInt8]) {
        if let lent = buffers.popLast() {
            bytes -= lent.capacity
            buffer = lent
        } else {
            buffer.reserveCapacity(OutputPool.initialCapacity)
        }
    }

    mutating func recycle(_ buffer: inout [UInt8]) {
        buffer.removeAll(keepingCapacity: true)
        let capacity = buffer.capacity
        if capacity <= OutputPool.maxBufferCapacity && bytes + capacity <= OutputPool.maxBytes {
            bytes += capacity
            buffers.append(buffer)
        }
        buffer = []
    }
}
