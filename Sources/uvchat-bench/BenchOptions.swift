/// `uvchat-bench SCENARIO [--name value]...`: every option has a default, so a bare scenario name runs.
struct BenchOptions {
    let scenario: String
    private var values: [String: String] = [:]
    let positional: [String]

    init(_ arguments: [String]) throws(BenchError) {
        guard let first = arguments.first else { throw BenchError(Self.usage) }
        scenario = first
        var rest: [String] = []
        var i = 1
        while i < arguments.count {
            let arg = arguments[i]
            if arg.hasPrefix("--") {
                if let eq = arg.firstIndex(of: "=") {
                    values[String(arg[arg.index(arg.startIndex, offsetBy: 2)..<eq])] = String(arg[arg.index(after: eq)...])
                } else {
                    guard i + 1 < arguments.count else { throw BenchError("\(arg) needs a value") }
                    values[String(arg.dropFirst(2))] = arguments[i + 1]
                    i += 1
                }
            } else {
                rest.append(arg)
            }
            i += 1
        }
        positional = rest
    }

    func string(_ name: String, _ fallback: String) -> String { values[name] ?? fallback }

    func int(_ name: String, _ fallback: Int) throws(BenchError) -> Int {
        guard let text = values[name] else { return fallback }
        guard let v = Int(text.replacingUnderscores), v >= 0 else { throw BenchError("--\(name) wants a count, got \(text)") }
        return v
    }

    func double(_ name: String, _ fallback: Double) throws(BenchError) -> Double {
        guard let text = values[name] else { return fallback }
        guard let v = Double(text), v >= 0 else { throw BenchError("--\(name) wants a number, got \(text)") }
        return v
    }

    func has(_ name: String) -> Bool { values[name] != nil }

    static let usage = """
        usage: uvchat-bench SCENARIO [options]     (one JSON line per run on stdout)
          common:  --host 127.0.0.1 --port 8080 --pid SERVER_PID (for /proc CPU and RSS) --timeout 180
                   --protocol 1|2 (2: offer uvchat.2 and send start; for idle and connect: these clients never ack)
          idle     --connections 20000 --concurrency 500 --settle 2
          connect  --connections 10000 --concurrency 100
          relay    --pairs 50 --window 16 --seconds 10 --warmup 1 | --messages M (fixed count, no warm-up)
                   --ramp-concurrency 100; a cluster: --ports P1,P2 (client i to P[i % n]) --pids OTHER_NODE_PIDS
                   --redis-pid PID (its CPU reported apart) and the pairing latency p50/p99
          latency  --pairs 50 --rate 20000 --seconds 10 --warmup 1
          churn    --concurrency 100 --seconds 5 | --sessions S (fixed count)
                   --close server|client (server: after the closing handshake the client waits for the server's
                   FIN, RFC 6455 7.1.1, so TIME_WAIT stays on the server; client: it closes at the server's answer)
          static   --connections 50 --seconds 5 --path /   (runs wrk)
          table    RESULTS.jsonl  (markdown table next to the issue's anchors)
        """
}

private extension String {
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}
