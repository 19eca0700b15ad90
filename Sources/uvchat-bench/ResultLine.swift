#if canImport(Glibc)
import Glibc
#endif

/// One scenario's result as a flat JSON object, keys in insertion order, printed as one line on stdout.
struct ResultLine {
    private var fields: [(String, String)] = []

    init(scenario: String) { add("scenario", scenario) }

    mutating func add(_ key: String, _ value: String) {
        var escaped = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case _ where scalar.value < 0x20: escaped += " "
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        fields.append((key, escaped + "\""))
    }

    mutating func add(_ key: String, _ value: Int) { fields.append((key, String(value))) }
    mutating func add(_ key: String, _ value: Bool) { fields.append((key, value ? "true" : "false")) }
    mutating func add(_ key: String, _ value: Double, digits: Int = 3) {
        fields.append((key, Self.format(value, digits: digits)))
    }

    /// The generator's own load over the window, with the saturation warning the issue asks for.
    mutating func addGenerator(_ window: Window, cpu: Double? = nil) {
        let load = cpu.map { window.seconds > 0 ? $0 / window.seconds : 0 } ?? window.generatorLoad
        add("generator_cpu_percent", load * 100, digits: 1)
        add("server_cpu_percent", window.serverLoad * 100, digits: 1)
        let saturated = load >= 0.95
        add("generator_saturated", saturated)
        if saturated { add("note", "generator saturated: compare CPU per operation, not throughput") }
    }

    var json: String { "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}" }

    /// Written straight to fd 1 so that the line is out before a driver script reads it, buffering or not.
    func print() {
        let text = json + "\n"
        _ = text.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    }

    /// Fixed-point text without Foundation; JSON has no NaN, so an unmeasurable value is null.
    static func format(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "null" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return String(value) }
        let n = UInt64(scaled)
        let whole = n / UInt64(scale), frac = n % UInt64(scale)
        var text = (value < 0 && n > 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let f = String(frac)
            text += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return text
    }
}
