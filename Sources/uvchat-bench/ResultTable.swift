/// The markdown table of issue 19: each row measured on uvchatd and on the floor (`bench/floor/floor.c`, a minimal
/// epoll server run through the same scenarios as `floor-NAME`), the ratio between them and the issue's target;
/// then the throughput and latency figures.
struct ResultTable {
    private struct Row {
        let title: String
        let scenario: String
        let key: String
        let unit: String
        /// The largest ratio to the floor that meets the target, or (`absolute`) the largest value; 0: none.
        let target: Double
        var absolute = false
        var scale = 1.0
    }

    private static let rows = [
        Row(title: "relay: server CPU per delivered message", scenario: "relay", key: "server_cpu_us_per_msg", unit: "µs", target: 1.1),
        Row(title: "churn (connect, pair, 1 message each way, close server-first): CPU per session", scenario: "churn", key: "server_cpu_us_per_session", unit: "µs", target: 1.1),
        Row(title: "static `GET /` keep-alive: CPU per request", scenario: "static", key: "server_cpu_us_per_request", unit: "µs", target: 1.1),
        Row(title: "connect + upgrade + pair: CPU per client", scenario: "connect", key: "server_cpu_us_per_conn", unit: "µs", target: 1.2),
        Row(title: "idle: RSS per paired connection", scenario: "idle", key: "server_rss_kib_per_conn", unit: "KiB", target: 0.25, absolute: true),
        Row(title: "idle: total RSS with 10,000 paired connections (`IDLE_CONNECTIONS`)", scenario: "idle", key: "server_rss_kib", unit: "MB", target: 9.5, absolute: true, scale: 1.024 / 1000),
        Row(title: "idle: RSS before the first connection", scenario: "idle", key: "server_rss_baseline_kib", unit: "MB", target: 0, absolute: true, scale: 1.024 / 1000),
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
        var out = "| per core | floor (C, epoll) | **uvchat** | uvchat ÷ floor | target | met |\n"
        out += "|---|---:|---:|---:|---:|:---:|\n"
        for row in Self.rows {
            func value(_ scenario: String) -> Double? {
                results[scenario].flatMap { Self.number($0, row.key) }.map { $0 * row.scale }
            }
            let mine = value(row.scenario), floor = value("floor-" + row.scenario)
            var ratio = "–", met = "–"
            if let mine, let floor, floor > 0 { ratio = ResultLine.format(mine / floor, digits: 2) }
            if let mine, row.target > 0 {
                if row.absolute {
                    met = mine <= row.target ? "yes" : "no"
                } else if let floor, floor > 0 {
                    met = mine / floor <= row.target ? "yes" : "no"
                }
            }
            let target = row.target == 0 ? "–" : row.absolute ? "≤ " + Self.text(row.target, row.unit) : "≤ " + ResultLine.format(row.target, digits: 2) + "×"
            let mineText = mine.map { "**" + Self.text($0, row.unit) + "**" } ?? "not run"
            out += "| \(row.title) | \(floor.map { Self.text($0, row.unit) } ?? "not run") | \(mineText) | \(ratio) | \(target) | \(met) |\n"
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
        line("churn") { "\(num($0, "sessions_per_s")) sessions/s at concurrency \(num($0, "concurrency")), \(Self.string($0, "close_first") ?? "?") closes first" }
        line("static") { "\(num($0, "requests_per_s")) requests/s (wrk, \(num($0, "connections")) connections)" }
        line("churn-client-close") { "\(num($0, "sessions_per_s")) sessions/s, \(num($0, "server_cpu_us_per_session")) µs of server CPU per session when the client closes TCP first" }
        for name in ["relay", "churn", "connect", "static"] {
            line("floor-" + name) { json in
                let key = ["relay": "msgs_per_s", "churn": "sessions_per_s", "connect": "connects_per_s", "static": "requests_per_s"][name]!
                return "\(num(json, key)) per second"
            }
        }
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
