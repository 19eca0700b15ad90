/// IMF-fixdate (RFC 9110 section 5.6.7) by calendar arithmetic on the proleptic Gregorian calendar, so no date
/// library and no time zone database is needed: HTTP dates are always GMT.
extension HTTPResponseWriter {
    private static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func httpDate(_ epochSeconds: Int) -> String {
        let days = floorDiv(epochSeconds, 86_400)
        let secondOfDay = epochSeconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        // 1970-01-01 was a Thursday.
        let weekday = floorMod(days + 4, 7)
        var s = dayNames[weekday]
        s += ", "
        s += twoDigits(day)
        s += " "
        s += monthNames[month - 1]
        s += " "
        s += fourDigits(year)
        s += " "
        s += twoDigits(secondOfDay / 3600)
        s += ":"
        s += twoDigits(secondOfDay / 60 % 60)
        s += ":"
        s += twoDigits(secondOfDay % 60)
        s += " GMT"
        return s
    }

    /// Accepts IMF-fixdate only; the obsolete RFC 850 and asctime forms are not sent by any current client.
    static func parseHTTPDate(_ s: String) -> Int? {
        let b = Array(s.utf8)
        guard b.count == 29,
              b[3] == UInt8(ascii: ","), b[4] == 0x20, b[7] == 0x20, b[11] == 0x20, b[16] == 0x20,
              b[19] == UInt8(ascii: ":"), b[22] == UInt8(ascii: ":"), b[25] == 0x20,
              b[26] == UInt8(ascii: "G"), b[27] == UInt8(ascii: "M"), b[28] == UInt8(ascii: "T")
        else { return nil }
        guard dayNames.contains(where: { $0.utf8.elementsEqual(b[0..<3]) }),
              let monthIndex = monthNames.firstIndex(where: { $0.utf8.elementsEqual(b[8..<11]) }),
              let day = number(b[5..<7]), let year = number(b[12..<16]),
              let hour = number(b[17..<19]), let minute = number(b[20..<22]), let second = number(b[23..<25])
        else { return nil }
        let month = monthIndex + 1
        guard day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60, second <= 60 else {
            return nil
        }
        return days(fromYear: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
    }

    /// Days since 1970-01-01 to (year, month 1...12, day 1...31). The year is shifted to start in March so the leap
    /// day falls at the end, and counted in 400-year eras of 146,097 days.
    static func civil(fromDays z: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = z + 719_468                       // days from 0000-03-01 to 1970-01-01
        let era = floorDiv(shifted, 146_097)
        let dayOfEra = shifted - era * 146_097          // 0...146096
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153  // 0 = March
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    /// The inverse of `civil(fromDays:)`.
    static func days(fromYear year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = floorDiv(y, 400)
        let yearOfEra = y - era * 400
        let monthFromMarch = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * monthFromMarch + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        var n = 0
        for d in digits {
            guard d >= 0x30 && d <= 0x39 else { return nil }
            n = n * 10 + Int(d - 0x30)
        }
        return n
    }

    private static func twoDigits(_ n: Int) -> String { n < 10 ? "0" + String(n) : String(n) }

    private static func fourDigits(_ n: Int) -> String {
        let s = String(n)
        return n >= 0 && s.utf8.count < 4 ? String(repeating: "0", count: 4 - s.utf8.count) + s : s
    }

    private static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
    private static func floorMod(_ a: Int, _ b: Int) -> Int { a - floorDiv(a, b) * b }
}
