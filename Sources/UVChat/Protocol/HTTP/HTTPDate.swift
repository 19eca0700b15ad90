/// HTTP dates (RFC 9110 section 5.6.7) by calendar arithmetic on the proleptic Gregorian calendar: HTTP dates are
/// always GMT, so neither a date library nor a time zone database is needed.
enum HTTPDate {
    private static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let longDayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// IMF-fixdate, the only form a sender may use: "Sun, 06 Nov 1994 08:49:37 GMT". Clamped to 1970...9999.
    static func format(_ epoch: Int) -> String {
        let epochSeconds = min(max(epoch, 0), 253_402_300_799)   // through 9999-12-31: always four year digits
        let days = floorDiv(epochSeconds, 86_400)
        let second = epochSeconds - days * 86_400
        let date = civil(fromDays: days)
        var out: [UInt8] = []
        out.reserveCapacity(29)
        out.append(contentsOf: dayNames[floorMod(days + 4, 7)].utf8)   // 1970-01-01 was a Thursday
        out.append(contentsOf: ", ".utf8)
        appendDigits(date.day, count: 2, to: &out)
        out.append(0x20)
        out.append(contentsOf: monthNames[date.month - 1].utf8)
        out.append(0x20)
        appendDigits(date.year, count: 4, to: &out)
        out.append(0x20)
        appendDigits(second / 3600, count: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(second / 60 % 60, count: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(second % 60, count: 2, to: &out)
        out.append(contentsOf: " GMT".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    /// Epoch seconds for any of the three forms a recipient must accept: IMF-fixdate, RFC 850
    /// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994"); nil for anything else,
    /// which the caller then ignores. An RFC 850 two-digit year more than 50 years after `now` is taken as the
    /// latest past year with those digits, as section 5.6.7 asks.
    static func parse(_ text: String, now: Int = 0) -> Int? {
        var b = Array(text.utf8)[...]
        while let f = b.first, f == 0x20 || f == 0x09 { b = b.dropFirst() }
        while let l = b.last, l == 0x20 || l == 0x09 { b = b.dropLast() }
        let s = Array(b)
        if s.count == 29 { return parseIMFFixdate(s) }
        if s.count == 24 { return parseAsctime(s) }
        return parseRFC850(s, now: now)
    }

    // "Sun, 06 Nov 1994 08:49:37 GMT"
    private static func parseIMFFixdate(_ s: [UInt8]) -> Int? {
        guard nameIndex(s[0..<3], in: dayNames) != nil, literal(s[3..<5], ", "), s[7] == 0x20,
              let month = nameIndex(s[8..<11], in: monthNames), s[11] == 0x20, s[16] == 0x20,
              literal(s[25..<29], " GMT"),
              let day = number(s[5..<7]), let year = number(s[12..<16]), let time = timeOfDay(s[17..<25])
        else { return nil }
        return epoch(year: year, month: month + 1, day: day, time: time)
    }

    // "Sun Nov  6 08:49:37 1994"; the day is space-padded.
    private static func parseAsctime(_ s: [UInt8]) -> Int? {
        guard nameIndex(s[0..<3], in: dayNames) != nil, s[3] == 0x20, let month = nameIndex(s[4..<7], in: monthNames),
              s[7] == 0x20, s[10] == 0x20, s[19] == 0x20,
              let day = s[8] == 0x20 ? number(s[9..<10]) : number(s[8..<10]),
              let time = timeOfDay(s[11..<19]), let year = number(s[20..<24])
        else { return nil }
        return epoch(year: year, month: month + 1, day: day, time: time)
    }

    // "Sunday, 06-Nov-94 08:49:37 GMT"
    private static func parseRFC850(_ s: [UInt8], now: Int) -> Int? {
        guard let comma = s.firstIndex(of: UInt8(ascii: ",")), nameIndex(s[0..<comma], in: longDayNames) != nil,
              s.count == comma + 24
        else { return nil }
        let r = Array(s[comma...])   // ", 06-Nov-94 08:49:37 GMT"
        guard literal(r[0..<2], ", "), r[4] == UInt8(ascii: "-"), let month = nameIndex(r[5..<8], in: monthNames),
              r[8] == UInt8(ascii: "-"), r[11] == 0x20, literal(r[20..<24], " GMT"),
              let day = number(r[2..<4]), let yy = number(r[9..<11]), let time = timeOfDay(r[12..<20])
        else { return nil }
        let nowYear = civil(fromDays: floorDiv(now, 86_400)).year
        var year = nowYear - floorMod(nowYear, 100) + yy
        if year > nowYear + 50 { year -= 100 }
        return epoch(year: year, month: month + 1, day: day, time: time)
    }

    // "08:49:37"; a leap second (":60") is let through rather than rejecting a real clock's output.
    private static func timeOfDay(_ s: ArraySlice<UInt8>) -> Int? {
        let i = s.startIndex
        guard s[i + 2] == UInt8(ascii: ":"), s[i + 5] == UInt8(ascii: ":"),
              let h = number(s[i..<(i + 2)]), let m = number(s[(i + 3)..<(i + 5)]), let sec = number(s[(i + 6)..<(i + 8)]),
              h < 24, m < 60, sec <= 60
        else { return nil }
        return h * 3600 + m * 60 + sec
    }

    private static func epoch(year: Int, month: Int, day: Int, time: Int) -> Int? {
        guard day >= 1, day <= daysIn(month: month, year: year) else { return nil }
        return days(fromYear: year, month: month, day: day) * 86_400 + time
    }

    /// Days since 1970-01-01 to a date. Counting years from March puts the leap day last, and 400-year eras of
    /// 146,097 days repeat exactly.
    static func civil(fromDays dayNumber: Int) -> (year: Int, month: Int, day: Int) {
        let z = dayNumber + 719_468                     // 0000-03-01 is day 0
        let era = floorDiv(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let marchMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * marchMonth + 2) / 5 + 1
        let month = marchMonth < 10 ? marchMonth + 3 : marchMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func days(fromYear year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = floorDiv(y, 400)
        let yearOfEra = y - era * 400
        let marchMonth = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * marchMonth + 2) / 5 + day - 1
        return era * 146_097 + yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear - 719_468
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func nameIndex(_ s: ArraySlice<UInt8>, in names: [String]) -> Int? {
        names.firstIndex { $0.utf8.elementsEqual(s) }
    }

    private static func literal(_ s: ArraySlice<UInt8>, _ text: String) -> Bool { s.elementsEqual(text.utf8) }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        var n = 0
        for d in digits {
            guard d >= 0x30, d <= 0x39 else { return nil }
            n = n * 10 + Int(d - 0x30)
        }
        return n
    }

    private static func appendDigits(_ value: Int, count: Int, to out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<count { divisor *= 10 }
        var v = value
        while divisor > 0 {
            out.append(0x30 + UInt8(v / divisor % 10))
            v %= divisor
            divisor /= 10
        }
    }

    private static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
    private static func floorMod(_ a: Int, _ b: Int) -> Int { a - floorDiv(a, b) * b }
}
