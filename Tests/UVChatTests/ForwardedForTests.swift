import Testing
@testable import UVChat

private func address(_ text: String) throws -> ClientAddress {
    try #require(ClientAddress(text: text), "\(text)")
}

@Suite struct ForwardedForTests {
    let proxy: ClientAddress
    let stranger: ClientAddress
    let trusted: Set<ClientAddress>

    init() throws {
        proxy = try address("10.0.0.1")
        stranger = try address("203.0.113.9")
        trusted = [proxy, try address("::1")]
    }

    private func client(peer: ClientAddress, _ header: String?) -> ClientAddress {
        ForwardedFor.clientAddress(peer: peer, header: header, trustedProxies: trusted)
    }

    @Test func headerFromAnUntrustedPeerIsIgnored() throws {
        // Anyone can send X-Forwarded-For; only a proxy we trust vouches for it.
        #expect(client(peer: stranger, "1.2.3.4") == stranger)
        #expect(client(peer: stranger, "1.2.3.4, 5.6.7.8") == stranger)
        #expect(ForwardedFor.clientAddress(peer: proxy, header: "1.2.3.4", trustedProxies: []) == proxy)
    }

    @Test func singleEntryFromATrustedPeerIsTheClient() throws {
        #expect(client(peer: proxy, "1.2.3.4") == (try address("1.2.3.4")))
    }

    @Test func rightmostEntryWinsBecauseOnlyItIsVouchedFor() throws {
        #expect(client(peer: proxy, "1.2.3.4, 5.6.7.8") == (try address("5.6.7.8")))
        #expect(client(peer: proxy, "1.2.3.4,5.6.7.8") == (try address("5.6.7.8")))
        // Whatever the client put on the left, even a trusted address, proves nothing.
        #expect(client(peer: proxy, "10.0.0.1, 9.9.9.9, 5.6.7.8") == (try address("5.6.7.8")))
    }

    @Test func optionalWhitespaceAroundTheEntryIsTrimmed() throws {
        // RFC 9110 5.6.1: list elements are separated by commas with optional whitespace (SP / HTAB).
        let expected = try address("5.6.7.8")
        for header in ["1.2.3.4,   5.6.7.8", "1.2.3.4,\t5.6.7.8", "1.2.3.4, 5.6.7.8 ", "1.2.3.4,5.6.7.8\t",
                       " \t 5.6.7.8 \t ", "1.2.3.4 ,\t \t5.6.7.8\t \t"] {
            #expect(client(peer: proxy, header) == expected, "\(header)")
        }
    }

    @Test func ipv6EntriesAreUnderstood() throws {
        #expect(client(peer: proxy, "1.2.3.4, 2001:db8::17") == (try address("2001:db8::17")))
        #expect(client(peer: proxy, "2001:db8::1, ::ffff:192.0.2.5") == (try address("192.0.2.5")))
        // A trusted IPv6 proxy (nginx on ::1) vouches the same way.
        let loopback = try address("::1")
        #expect(client(peer: loopback, "198.51.100.7") == (try address("198.51.100.7")))
    }

    @Test func rightmostEntryThatIsNotAnAddressKeepsThePeer() throws {
        for header in ["1.2.3.4, unknown", "1.2.3.4, 5.6.7", "1.2.3.4, 5.6.7.8:443", "1.2.3.4, [2001:db8::1]",
                       "1.2.3.4, 5.6.7.8 9.9.9.9", "1.2.3.4, 256.1.1.1", "1.2.3.4, ", "", "   ", ",", "1.2.3.4, _",
                       "1.2.3.4, 5.6.7.8\r"] {
            #expect(client(peer: proxy, header) == proxy, "\(header)")
        }
    }

    @Test func repeatedFieldLinesAreOneListAndTheLastEntryCounts() {
        // A proxy that adds its own line leaves the client's (forgeable) line first.
        let lines = ["6.6.6.6", "203.0.113.9"]
        #expect(ForwardedFor.clientAddress(peer: proxy, fieldLines: lines, trustedProxies: [proxy])
                == ClientAddress(text: "203.0.113.9"))
        #expect(ForwardedFor.clientAddress(peer: proxy, fieldLines: [], trustedProxies: [proxy]) == proxy)
        #expect(ForwardedFor.clientAddress(peer: stranger, fieldLines: lines, trustedProxies: [proxy]) == stranger)
    }

    @Test func missingHeaderKeepsThePeer() {
        #expect(client(peer: proxy, nil) == proxy)
        #expect(client(peer: stranger, nil) == stranger)
    }
}

/// `ASCII.trimmingSpaces` works on bytes (a UTF-8 view, a slice of a buffer); `t` runs it on a string's bytes.
private func t(_ s: String) -> String { String(decoding: ASCII.trimmingSpaces(Array(s.utf8)), as: UTF8.self) }

@Suite struct ASCIITrimmingSpacesTests {
    @Test func dropsLeadingAndTrailingSpacesAndTabs() {
        #expect(t("  a b  ") == "a b")
        #expect(t("\t\tvalue\t") == "value")
        #expect(t(" \t mixed \t ") == "mixed")
        #expect(t("untouched") == "untouched")
    }

    @Test func keepsInnerWhitespace() {
        #expect(t(" a \t b ") == "a \t b")
    }

    @Test func allWhitespaceOrNothingIsEmpty() {
        #expect(t("") == "")
        #expect(t(" ") == "")
        #expect(t(" \t\t  ") == "")
    }

    @Test func otherWhitespaceIsNotOptionalWhitespace() {
        // OWS is SP and HTAB only (RFC 9110 5.6.3); CR, LF, VT, FF and NBSP stay.
        #expect(t("\rx\n") == "\rx\n")
        #expect(t("\u{0B}x\u{0C}") == "\u{0B}x\u{0C}")
        #expect(t("\u{A0}x\u{A0}") == "\u{A0}x\u{A0}")
        #expect(t(" \nx\n ") == "\nx\n")
    }

    @Test func worksOnASliceAndKeepsItsIndices() throws {
        let line = Array("name:  value \t;rest".utf8)
        let end = try #require(line.firstIndex(of: UInt8(ascii: ";")))
        let trimmed = ASCII.trimmingSpaces(line[5..<end])
        #expect(Array(trimmed) == Array("value".utf8))
        #expect(trimmed.startIndex == 7 && trimmed.endIndex == 12)
    }
}
