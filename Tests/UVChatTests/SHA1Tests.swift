import Testing
@testable import UVChat

private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}

@Suite struct SHA1Tests {
    @Test func hashesFIPSVectorABC() {
        #expect(hex(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
    }

    @Test func hashesEmptyInput() {
        #expect(hex(SHA1.hash([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }

    @Test func hashesTwoBlockFIPSVector() {
        let input = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        #expect(hex(SHA1.hash(Array(input.utf8))) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
    }

    @Test func hashesOneMillionLetterA() {
        let input = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(hex(SHA1.hash(input)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func paddingAtEveryLengthAroundABlockBoundary() {
        // Lengths 55, 56 and 64 are where the length field does or does not fit the last block.
        #expect(hex(SHA1.hash([UInt8](repeating: 0x61, count: 55))) == "c1c8bbdc22796e28c0e15163d20899b65621d65a")
        #expect(hex(SHA1.hash([UInt8](repeating: 0x61, count: 56))) == "c2db330f6083854c99d4b5bfb6e8f29f201be699")
        #expect(hex(SHA1.hash([UInt8](repeating: 0x61, count: 64))) == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
    }
}

@Suite struct Base64Tests {
    private let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ]

    @Test func encodesRFC4648Vectors() {
        for (plain, encoded) in vectors { #expect(Base64.encode(Array(plain.utf8)) == encoded) }
    }

    @Test func decodesRFC4648Vectors() {
        for (plain, encoded) in vectors { #expect(Base64.decode(encoded) == Array(plain.utf8)) }
    }

    @Test func roundTripsEveryByteValue() {
        let all = (0...255).map { UInt8($0) }
        for length in 0..<10 {
            let bytes = Array(all.suffix(length * 25 + length))
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
    }

    @Test func decodingRequiresPadding() {
        #expect(Base64.decode("Zg") == nil)
        #expect(Base64.decode("Zm8") == nil)
        #expect(Base64.decode("Zm9vYg") == nil)
    }

    @Test func decodingRefusesWhitespaceAndForeignCharacters() {
        #expect(Base64.decode("Zm9v Yg==") == nil)
        #expect(Base64.decode("Zm9v\nYg==") == nil)
        #expect(Base64.decode(" Zm9v") == nil)
        #expect(Base64.decode("Zm9-") == nil)
        #expect(Base64.decode("Zm9_") == nil)
    }

    @Test func decodingRefusesMisplacedPadding() {
        #expect(Base64.decode("Zg==Zm9v") == nil)
        #expect(Base64.decode("Z===") == nil)
        #expect(Base64.decode("====") == nil)
        #expect(Base64.decode("Zm=v") == nil)
    }

    @Test func decodingRefusesNonZeroPaddingBits() {
        #expect(Base64.decode("Zh==") == nil)
        #expect(Base64.decode("Zm9=") == nil)
    }
}
