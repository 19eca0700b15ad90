import Testing
@testable import UVChat

/// Validates `bytes` in one call and fed one byte at a time; both must agree. Returns (valid so far, complete).
private func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> (Bool, Bool) {
    var whole = UTF8Validator()
    let ok = bytes.withUnsafeBytes { whole.validate($0) }
    var stepwise = UTF8Validator()
    var stepOK = true
    for b in bytes where stepOK {
        stepOK = [b].withUnsafeBytes { stepwise.validate($0) }
    }
    #expect(stepOK == ok, "byte by byte disagrees for \(bytes)", sourceLocation: sourceLocation)
    if ok { #expect(stepwise.isComplete == whole.isComplete, sourceLocation: sourceLocation) }
    return (ok, whole.isComplete)
}

private func isValid(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    let (ok, complete) = check(bytes, sourceLocation: sourceLocation)
    return ok && complete
}

/// The number of bytes, fed one at a time, after which the validator first says no; nil when it never does.
private func failurePosition(_ bytes: [UInt8]) -> Int? {
    var v = UTF8Validator()
    for (i, b) in bytes.enumerated() where ![b].withUnsafeBytes({ v.validate($0) }) { return i + 1 }
    return nil
}

private func utf8(_ scalar: UInt32) -> [UInt8] { Array(String(Unicode.Scalar(scalar)!).utf8) }

@Suite struct UTF8ValidatorTests {
    @Test(arguments: [0x0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFF, 0x1000, 0xD7FF, 0xE000, 0xFFFD, 0xFFFE, 0xFFFF,
                      0x10000, 0x3FFFF, 0x40000, 0xFFFFF, 0x100000, 0x10FFFF] as [UInt32])
    func acceptsScalarBoundaries(scalar: UInt32) {
        let bytes = utf8(scalar)
        #expect(isValid(bytes))
        #expect(isValid(Array("κόσμε".utf8) + bytes + Array("abcdefghijklmnopq".utf8) + bytes))
    }

    @Test func acceptsEveryScalar() {
        var all: [UInt8] = []
        all.reserveCapacity(4_400_000)
        for s in 0...0x10FFFF as ClosedRange<UInt32> where !(0xD800...0xDFFF).contains(s) {
            all += utf8(s)
        }
        var v = UTF8Validator()
        #expect(all.withUnsafeBytes { v.validate($0) })
        #expect(v.isComplete)
        // The same stream in odd-sized chunks, so sequences straddle calls at every position.
        var chunked = UTF8Validator()
        var ok = true
        all.withUnsafeBytes { buffer in
            var i = 0
            while i < buffer.count && ok {
                let n = min(13, buffer.count - i)
                ok = chunked.validate(UnsafeRawBufferPointer(rebasing: buffer[i..<(i + n)]))
                i += n
            }
        }
        #expect(ok && chunked.isComplete)
    }

    @Test func rejectsSurrogates() {
        for s in [0xD800, 0xDB7F, 0xDB80, 0xDBFF, 0xDC00, 0xDF80, 0xDFFF] as [UInt32] {
            let bytes: [UInt8] = [0xED, UInt8(0x80 | (s >> 6) & 0x3F), UInt8(0x80 | s & 0x3F)]
            #expect(!isValid(bytes), "U+\(String(s, radix: 16))")
            #expect(failurePosition(bytes) == 2)
        }
        // A surrogate pair encoded as two 3-byte forms (CESU-8) is still invalid.
        #expect(!isValid([0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80]))
    }

    @Test func rejectsOverlongForms() {
        let cases: [([UInt8], Int)] = [
            ([0xC0, 0xAF], 1), ([0xC1, 0xBF], 1), ([0xC0, 0x80], 1),
            ([0xE0, 0x80, 0xAF], 2), ([0xE0, 0x9F, 0xBF], 2), ([0xE0, 0x80, 0x80], 2),
            ([0xF0, 0x80, 0x80, 0xAF], 2), ([0xF0, 0x8F, 0xBF, 0xBF], 2),
            ([0xF8, 0x80, 0x80, 0x80, 0xAF], 1), ([0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF], 1),
        ]
        for (bytes, position) in cases {
            #expect(!isValid(bytes), "\(bytes)")
            #expect(failurePosition(bytes) == position, "\(bytes)")
        }
    }

    @Test func rejectsFiveAndSixByteFormsAndBytesAboveF4() {
        #expect(!isValid([0xF8, 0x88, 0x80, 0x80, 0x80]))
        #expect(!isValid([0xFC, 0x84, 0x80, 0x80, 0x80, 0x80]))
        #expect(!isValid([0xF4, 0x90, 0x80, 0x80]))                    // U+110000
        #expect(failurePosition([0xF4, 0x90, 0x80, 0x80]) == 2)
        #expect(!isValid([0xF7, 0xBF, 0xBF, 0xBF]))
        for lead in 0xF5...0xFF { #expect(failurePosition([UInt8(lead), 0x80, 0x80, 0x80]) == 1, "\(lead)") }
        #expect(failurePosition([0xC0]) == 1 && failurePosition([0xC1]) == 1)
    }

    @Test func rejectsUnexpectedContinuationBytes() {
        for b in 0x80...0xBF { #expect(failurePosition([0x61, UInt8(b)]) == 2) }
        #expect(failurePosition(utf8(0x20AC) + [0x80]) == 4)
        #expect(failurePosition([0xC2, 0x41]) == 2)                       // lead followed by ASCII
        #expect(failurePosition([0xE2, 0x82, 0x41]) == 3)
    }

    @Test func reportsTruncatedSequencesAsIncomplete() {
        for scalar in [0x80, 0x20AC, 0x10348, 0x10FFFF] as [UInt32] {
            let bytes = utf8(scalar)
            for cut in 1..<bytes.count {
                let (ok, complete) = check(Array(bytes[..<cut]))
                #expect(ok && !complete, "U+\(String(scalar, radix: 16)) cut at \(cut)")
            }
        }
        #expect(check([]) == (true, true))
    }

    @Test func failsFastInsideLongValidText() {
        // Autobahn 6.4.x: "κόσμε" then a code point above U+10FFFF; the failure is at F4 90, not at the end.
        let prefix = Array("κόσμε".utf8)
        let bytes = prefix + [0xF4, 0x90, 0x80, 0x80] + Array("edited".utf8)
        #expect(failurePosition(bytes) == prefix.count + 2)
    }

    @Test func asciiFastPathSeesEveryByte() {
        for position in 0..<40 {
            var bytes = [UInt8](repeating: 0x61, count: 40)
            bytes[position] = 0xFF
            #expect(failurePosition(bytes) == position + 1)
            var v = UTF8Validator()
            #expect(!bytes.withUnsafeBytes { v.validate($0) }, "0xFF at \(position)")
            // A valid two-byte character at any position, including across the words the fast path reads.
            var good = [UInt8](repeating: 0x61, count: 40)
            good[position] = 0xC3
            good[(position + 1) % 40] = 0xA9
            if position < 39 { #expect(isValid(good), "é at \(position)") }
        }
    }

    @Test func resetForgetsAPartialSequence() {
        var v = UTF8Validator()
        #expect(([0xE2, 0x82] as [UInt8]).withUnsafeBytes { v.validate($0) })
        #expect(!v.isComplete)
        v.reset()
        #expect(v.isComplete)
        #expect(([0x41] as [UInt8]).withUnsafeBytes { v.validate($0) })
        #expect(v.isComplete)
    }

    @Test func agreesWithTheStandardLibrary() {
        // Random strings over bytes that matter at sequence edges, against String(validating:).
        let alphabet: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33) % n
        }
        var validSeen = 0
        for _ in 0..<20_000 {
            let bytes = (0..<(1 + random(6))).map { _ in alphabet[random(alphabet.count)] }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            if expected { validSeen += 1 }
            #expect(isValid(bytes) == expected, "\(bytes)")
        }
        #expect(validSeen > 100)
    }

    @Test func wholeSequencesCheckedInPlaceAgreeWithTheStandardLibrary() {
        // Every lead byte with every next byte, and edge values after that, with text around the sequence so that
        // the whole character lies in one buffer (the in-place path), against String(validating:).
        let edges: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF]
        var cases = 0
        for lead in UInt8(0x80)...UInt8(0xFF) {
            for second in UInt8(0)...UInt8(0xFF) {
                for third in lead >= 0xE0 ? edges : [0x41] {
                    for fourth in lead >= 0xF0 ? [UInt8(0x80), 0x41, 0xC0] : [0x41] {
                        let bytes: [UInt8] = [0x61, 0xD0, 0xB6, lead, second, third, fourth, 0x7A]
                        var v = UTF8Validator()
                        let ok = bytes.withUnsafeBytes { v.validate($0) } && v.isComplete
                        let expected = String(validating: bytes, as: UTF8.self) != nil
                        if ok != expected { Issue.record("\(bytes): \(ok), expected \(expected)") }
                        cases += 1
                    }
                }
            }
        }
        #expect(cases > 100_000)
    }
}
