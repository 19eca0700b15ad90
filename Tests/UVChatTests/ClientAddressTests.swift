import Testing
@testable import UVChat

@Suite struct ClientAddressTests {
    @Test func ipv4IsStoredAsMappedIPv6AndPrintsDotted() throws {
        let a = try #require(ClientAddress(text: "192.168.1.20"))
        #expect(a.isIPv4Mapped)
        #expect(a.high == 0)
        #expect(a.low == 0xffff_c0a8_0114)
        #expect(a.description == "192.168.1.20")
    }

    @Test func mappedTextEqualsPlainIPv4() throws {
        #expect(ClientAddress(text: "::ffff:10.0.0.7") == ClientAddress(text: "10.0.0.7"))
    }

    @Test func ipv6KeepsAllSixteenBytesInOrder() throws {
        let a = try #require(ClientAddress(text: "2001:db8::ff00:42:8329"))
        #expect(a.high == 0x2001_0db8_0000_0000)
        #expect(a.low == 0x0000_ff00_0042_8329)
        #expect(a.description == "2001:db8:0:0:0:ff00:42:8329")
        #expect(ClientAddress(text: "::1") == ClientAddress(high: 0, low: 1))
    }

    @Test func distinctAddressesAreDistinctKeys() {
        #expect(ClientAddress(text: "10.0.0.1") != ClientAddress(text: "10.0.0.2"))
        #expect(ClientAddress(text: "not an address") == nil)
    }
}
