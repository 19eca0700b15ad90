/// The markdown table of issue 8: the anchor columns as the issue states them, uvchat's measured column,
/// and whether the target (at or below uWebSockets) is met; then the throughput and latency figures.
struct ResultTable {
    private struct Row {
        let title: String
        let scenario: String
        let key: String
        let unit: String
        let anchors: [String]   // Go + gorilla, Node + ws, Hummingbird 2, uWebSockets, as the issue prints them
        var target: Double { Double(anchors[3])! }
    }

    private static let rows = [
        Row(title: "relay: server CPU per delivered message", scenario: "relay", key: "server_cpu_us_per_msg", unit: "µs", anchors: ["10.7", "13.4", "37.6", "4.1"]),
        Row(title: "idle paired connections: server RSS per connection", scenario: "idle", key: "server_rss_kib_per_conn", unit: "KiB", anchors: ["26.6", "6.4", "36.0", "0.43"]),
        Row(title: "connect + upgrade + pair: server CPU", scenario: "connect", key: "server_cpu_us_per_conn", unit: "µs", anchors: ["129", "190", "303", "45"]),
        Row(title: "churn (connect, pair, 1 message each way, close): CPU per session", scenario: "churn", key: "server_cpu_us_per_session", unit: "µs", anchors: ["186", "288", "534", "66"]),
        Row(title: "static `GET /` keep-alive: CPU per request", scenario: "static", key: "server_cpu_us_per_request", unit: "µs", anchors: ["45", "83", "263", "7"]),
    ]

    let results: [String: String]   // scenario -> its JSON line (the last one wins)

    init(jsonLines: String) {
        var found: [String: String] = [:]
        for line in jsonLines.split(separator: "\n") where line.hasPrefix("{") {
            if let scenario = Self.string(String(line), "scenario") { found[scenario] = String(line) }
        }
        results = found
    }

    var markdown: String {
        var out = "| per core | Go + gorilla | Node + ws | Hummingbird 2 | uWebSockets on libuv (C++) | **uvchat** | target met |\n"
        out += "|---|---:|---:|---:|---:|---:|:---:|\n"
        for row in Self.rows {
            let anchors = row.anchors.map { $0 + " " + row.unit }.joined(separator: " | ")
            var measured = "not run", met = "–"
            if let line = results[row.scenario], let v = Self.number(line, row.key) {
                measured = "**" + Self.text(v, row.unit) + "**"
                met = v <= row.target ? "yes" : "no"
            }
            out += "| \(row.title) | \(anchors) | \(measured) | \(met) |\n"
        }
        out += "\n" + details
        return out
    }

    private var details: String {
        var out = ""
        func line(_ scenario: String, _ describe: (String) -> String) {
            if let json = results[scenario] {
                var text = "- \(scenario): " + describe(json)
                if let v = Self.number(json, "violations") { text += ", violations \(Int(v))" }
                if let v = Self.number(json, "errors"), v > 0 { text += ", errors \(Int(v))" }
                if let g = Self.number(json, "generator_cpu_percent") { text += "; generator CPU \(ResultLine.format(g, digits: 0)) %" }
                if json.contains("\"generator_saturated\":true") { text += " (generator saturated: compare CPU per operation, not throughput)" }
                if let e = Self.string(json, "error") { text += "; ERROR: \(e)" }
                out += text + "\n"
            }
        }
        line("relay") { "\(num($0, "msgs_per_s")) msgs/s delivered over \(num($0, "pairs")) pairs (window \(num($0, "window")))" }
        line("latency") { "p50 \(num($0, "p50_us")) µs, p99 \(num($0, "p99_us")) µs, p99.9 \(num($0, "p99_9_us")) µs at \(num($0, "msgs_per_s")) msgs/s over \(num($0, "pairs")) pairs" }
        line("idle") { "\(num($0, "paired")) paired connections, server RSS \(num($0, "server_rss_kib")) KiB (baseline \(num($0, "server_rss_baseline_kib")) KiB)" }
        line("connect") { "\(num($0, "connects_per_s")) connections upgraded and paired per second" }
        line("churn") { "\(num($0, "sessions_per_s")) sessions/s at concurrency \(num($0, "concurrency"))" }
        line("static") { "\(num($0, "requests_per_s")) requests/s (wrk, \(num($0, "connections")) connections)" }
        return out
    }

    private func num(_ json: String, _ key: String) -> String {
        guard let v = Self.number(json, key) else { return "?" }
        return v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : ResultLine.format(v, digits: v < 10 ? 3 : 1)
    }

    private static func text(_ v: Double, _ unit: String) -> String {
        ResultLine.format(v, digits: v < 10 ? 2 : (v < 100 ? 1 : 0)) + " " + unit
    }

    /// The value of `"key":` in a flat JSON object written by ResultLine.
    static func number(_ json: String, _ key: String) -> Double? {
        guard let range = json.firstRange(of: "\"\(key)\":") else { return nil }
        let rest = json[range.upperBound...].prefix { $0 != "," && $0 != "}" }
        return Double(rest)
    }

    static func string(_ json: String, _ key: String) -> String? {
        guard let range = json.firstRange(of: "\"\(key)\":\"") else { return nil }
        return String(json[range.upperBound...].prefix { $0 != "\"" })
    }
}
