#if canImport(Glibc)
import Glibc
#endif

/// Memory for many libuv handles of one type, carved from blocks of 256, with a free list threaded through the
/// free slots: no allocator header per handle (16 bytes on each of 100,000 connections) and no fragmentation
/// between handles and the objects around them.
///
/// A slot is taken when a handle is initialized and given back only in that handle's `uv_close` callback. Blocks
/// are kept for the life of the server, so the memory is bounded by the most connections ever open at once.
///
/// Every build, debug and sanitizer builds included, runs this one path. Under AddressSanitizer a free slot is
/// poisoned whole (its free-list link too: the slab unpoisons a slot before it reads the link), and unpoisoned when
/// it is handed out, so touching a handle after its close callback is still reported as it would be with a
/// separate allocation for each handle.
final class HandleSlab<Handle> {
    private static var slotSize: Int {
        let align = max(MemoryLayout<Handle>.alignment, MemoryLayout<UnsafeMutableRawPointer>.alignment)
        return (max(MemoryLayout<Handle>.stride, MemoryLayout<UnsafeMutableRawPointer>.size) + align - 1) / align * align
    }
    private static var slotsPerBlock: Int { 256 }

    private var blocks: [UnsafeMutableRawPointer] = []
    /// The first free slot; each free slot's first word holds the next.
    private var free: UnsafeMutableRawPointer?
    /// The AddressSanitizer runtime's poisoning calls, nil without it.
    private let poison = AddressSanitizer.poison
    private let unpoison = AddressSanitizer.unpoison

    init() {}

    func allocate() -> UnsafeMutablePointer<Handle> {
        if free == nil { grow() }
        let slot = free!
        unpoison?(slot, Self.slotSize)
        free = slot.load(as: UnsafeMutableRawPointer?.self)
        return slot.bindMemory(to: Handle.self, capacity: 1)
    }

    func deallocate(_ handle: UnsafeMutablePointer<Handle>) {
        let slot = UnsafeMutableRawPointer(handle)
        slot.storeBytes(of: free, as: UnsafeMutableRawPointer?.self)
        free = slot
        poison?(slot, Self.slotSize)
    }

    private func grow() {
        let size = Self.slotSize
        let block = UnsafeMutableRawPointer.allocate(byteCount: size * Self.slotsPerBlock,
                                                     alignment: max(16, MemoryLayout<Handle>.alignment))
        blocks.append(block)
        for i in stride(from: Self.slotsPerBlock - 1, through: 0, by: -1) {
            let slot = block + i * size
            slot.storeBytes(of: free, as: UnsafeMutableRawPointer?.self)
            free = slot
        }
        poison?(block, size * Self.slotsPerBlock)
    }

    deinit {
        for block in blocks {
            unpoison?(block, Self.slotSize * Self.slotsPerBlock)
            block.deallocate()
        }
    }
}

@available(*, unavailable)
extension HandleSlab: Sendable {}

/// `__asan_poison_memory_region` and `__asan_unpoison_memory_region`, looked up once in the running process: present
/// only when it was built with `--sanitize=address`, so a normal build calls nothing.
private enum AddressSanitizer {
    typealias Region = @convention(c) (UnsafeRawPointer?, Int) -> Void

    private struct Calls: @unchecked Sendable {
        let poison: Region?
        let unpoison: Region?
    }

    private static let calls = Calls(poison: lookup("__asan_poison_memory_region"),
                                     unpoison: lookup("__asan_unpoison_memory_region"))

    static var poison: Region? { calls.poison }
    static var unpoison: Region? { calls.unpoison }

    private static func lookup(_ name: String) -> Region? {
        // RTLD_DEFAULT (a null handle): the executable and every library it loaded, the sanitizer runtime among them.
        guard let symbol = dlsym(nil, name) else { return nil }
        return unsafeBitCast(symbol, to: Region.self)
    }
}
