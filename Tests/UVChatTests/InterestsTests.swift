import Testing
@testable import UVChat

@Suite struct InterestsTests {
    @Test func noParameterMeansNoInterests() {
        #expect(Interests.parse(query: nil) == [])
        #expect(Interests.parse(query: "") == [])
        #expect(Interests.parse(query: "x=1&y=2") == [])
        #expect(Interests.parse(query: "interests=") == [])
        #expect(Interests.parse(query: "myinterests=music") == [])
        #expect(Interests.parse(query: "interests") == [])
    }

    @Test func findsTheParameterAmongOthers() {
        #expect(Interests.parse(query: "interests=music,movies") == ["music", "movies"])
        #expect(Interests.parse(query: "x=1&interests=a,b&y=2") == ["a", "b"])
        #expect(Interests.parse(query: "interests=a&interests=b") == ["b"])   // the last one counts
    }

    @Test func tagsArePercentDecodedTrimmedAndLowerCased() {
        #expect(Interests.parse(query: "interests=%20Music%20,%09Movies") == ["music", "movies"])
        #expect(Interests.parse(query: "interests=%C3%89T%C3%89,CAF%C3%89") == ["été", "café"])
        #expect(Interests.parse(query: "interests=rock+roll") == ["rock roll"])             // '+' is a space
        #expect(Interests.parse(query: "interests=a%2Bb") == ["a+b"])
        #expect(Interests.parse(query: "interests=a%2Cb,c") == ["a,b", "c"])              // an encoded comma stays
        #expect(Interests.parse(query: "interests=ÄBC") == ["äbc"])                          // raw UTF-8 is fine too
    }

    @Test func invalidTagsAreDroppedOthersKept() {
        #expect(Interests.parse(query: "interests=bad%ZZ,ok,%4,%") == ["ok"])
        #expect(Interests.parse(query: "interests=%C0%80,%FF,%E2%9C,fine,%E2%9C%93") == ["fine", "✓"])
        #expect(Interests.parse(query: "interests=a%00b,c%07,d") == ["d"])                 // control characters
    }

    @Test func emptyAndBlankTagsAreDropped() {
        #expect(Interests.parse(query: "interests=,,%20,+,ok,") == ["ok"])
    }

    @Test func tagsOfOneTo32CharactersAreKept() {
        let x32 = String(repeating: "x", count: 32)
        #expect(Interests.parse(query: "interests=\(x32)x,\(x32)") == [x32])
        // Characters, not bytes: 32 two-byte letters and 32 flags (8 bytes each) are fine, 33 are not.
        let e32 = String(repeating: "%C3%A9", count: 32)
        #expect(Interests.parse(query: "interests=\(e32)") == [String(repeating: "é", count: 32)])
        #expect(Interests.parse(query: "interests=\(e32)%C3%A9") == [])
        let flag = "%F0%9F%87%AB%F0%9F%87%B7"
        #expect(Interests.parse(query: "interests=" + String(repeating: flag, count: 32)) == [String(repeating: "🇫🇷", count: 32)])
        #expect(Interests.parse(query: "interests=a") == ["a"])
    }

    @Test func duplicatesAreDroppedAfterNormalising() {
        #expect(Interests.parse(query: "interests=Music,music,%20MUSIC,jazz,music") == ["music", "jazz"])
    }

    @Test func atMostFiveTagsTheFirstFiveKept() {
        #expect(Interests.parse(query: "interests=a,b,c,d,e,f,g") == ["a", "b", "c", "d", "e"])
        // Dropped tags do not take a place among the five.
        #expect(Interests.parse(query: "interests=a,a,%ZZ,,b,c,d,e,f") == ["a", "b", "c", "d", "e"])
    }
}

@Suite struct InterestsNormalizeTests {
    @Test func appliesTheTagRules() {
        #expect(Interests.normalize([" Music ", "\tMOVIES\n", "music", "", "  ", "a\u{0}b", "c\u{7}", "x"]) == ["music", "movies", "x"])
        #expect(Interests.normalize(["a", "b", "c", "d", "e", "f"]) == ["a", "b", "c", "d", "e"])
        #expect(Interests.normalize([String(repeating: "x", count: 33), String(repeating: "é", count: 32)])
                == [String(repeating: "é", count: 32)])
        #expect(Interests.normalize([String]()) == [])
    }

    @Test func stopsReadingOnceFiveAreKept() {
        var read = 0
        let raw = (0..<100).lazy.map { i -> String in read += 1; return "t\(i)" }
        #expect(Interests.normalize(raw) == ["t0", "t1", "t2", "t3", "t4"])
        #expect(read == 5)
    }

    @Test func theQueryParserAndNormalizeAgree() {
        // The same raw tags, once as a query (each encoded like encodeURIComponent) and once as decoded Strings.
        let lists: [[String]] = [["Music", " jazz", "MUSIC"], ["a", "b", "c", "d", "e", "f", "g"], ["ÉTÉ", "été", "x y"],
                                 ["a,b", "c"], [String(repeating: "z", count: 33), "ok"], ["tab\tin", "fine"]]
        for raw in lists {
            let query = "interests=" + raw.map { tag in
                tag.utf8.map { b -> String in
                    let plain = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                    return plain ? String(UnicodeScalar(b)) : "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
                }.joined()
            }.joined(separator: ",")
            #expect(Interests.parse(query: query) == Interests.normalize(raw), "\(raw)")
        }
    }
}

private extension String {
    func leftPadded(to n: Int) -> String { String(repeating: "0", count: Swift.max(0, n - count)) + self }
}
