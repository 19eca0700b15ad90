/// CRC-32 as PNG uses it (ISO 3309 / ITU-T V.42: reflected polynomial 0xEDB88320, initial and final XOR all ones).
///
/// Only for checking PNG chunk checksums, which guard against transmission damage; it is not a cryptographic check
/// and is not used as one. One table lookup per byte: the chunks checked are at most a few megabytes.
enum CRC32 {
    /// 256 entries, 1 KiB, built once on first use (a global `let` is initialised once, thread-safely) and only
    /// read afterwards, so a checksum allocates nothing.
    static let table: [UInt32] = (0..<256).map { (n: UInt32) -> UInt32 in
        var c = n
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// Continues a running CRC (start from `0`) over `count` bytes at `start`.
    static func update(_ crc: UInt32, _ start: UnsafeRawPointer, count: Int) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            var c = ~crc
            for i in 0..<count {
                let byte = start.load(fromByteOffset: i, as: UInt8.self)
                c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8)
            }
            return ~c
        }
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return 0 }
        return update(0, base, count: bytes.count)
    }
}
