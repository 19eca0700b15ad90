#if canImport(Glibc)
import Glibc
#endif

/// Bytes waiting to be written (or a partial frame waiting for the rest). Storage is malloc'd lazily so an
/// idle client costs nothing, and is reused after it drains so steady streaming does not allocate.
struct ByteQueue {
    private(set) var base: UnsafeMutableRawPointer?
    var count = 0
    private var capacity = 0

    var isEmpty: Bool { count == 0 }

    /// Room for `n` more bytes; the caller writes them and then calls `commit(n)`.
    mutating func reserve(_ n: Int) -> UnsafeMutableRawPointer {
        if count + n > capacity {
            var newCapacity = max(capacity * 2, 256)
            while newCapacity < count + n { newCapacity *= 2 }
            guard let grown = realloc(base, newCapacity) else { fatalError("out of memory") }
            base = grown
            capacity = newCapacity
        }
        return base! + count
    }

    mutating func commit(_ n: Int) { count += n }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        let dst = reserve(bytes.count)
        dst.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        commit(bytes.count)
    }

    /// Drops the first `n` bytes (what the parser consumed or the socket took).
    mutating func removeFirst(_ n: Int) {
        if n >= count { count = 0; return }
        memmove(base!, base! + n, count - n)
        count -= n
    }

    mutating func free() {
        Glibc.free(base)
        base = nil
        count = 0
        capacity = 0
    }
}
