/// `idle` and `connect`: open N clients and wait until every one is paired. `connect` reports the server's
/// CPU per pair-member over that ramp; `idle` then lets the server settle and reports its RSS per connection
/// above the baseline taken before the first connect.
final class RampScenario: BenchScenario {
    private let name: String
    private let bench: BenchLoop
    private let serverPID: Int32
    private let settleSeconds: Double
    private var ramp: ConnectionRamp!
    private var baseline: ProcessSample!
    private var pairedSample: ProcessSample?
    private var timers: [BenchTimer] = []
    private var unexpected = 0
    private(set) var result: ResultLine?

    init(name: String, bench: BenchLoop, options: BenchOptions, serverPID: Int32) throws(BenchError) {
        self.name = name
        self.bench = bench
        self.serverPID = serverPID
        let defaultCount = name == "idle" ? 20_000 : 10_000
        var count = try options.int("connections", defaultCount)
        count += count % 2
        settleSeconds = try options.double("settle", 2)
        ramp = try ConnectionRamp(bench: bench, scenario: self, total: count,
                                  concurrency: try options.int("concurrency", name == "idle" ? 500 : 100),
                                  bindSources: true)
    }

    func start(timeout: Double) {
        baseline = ProcessSample.take(serverPID: serverPID)
        ramp.start()
        timers.append(BenchTimer(bench, after: UInt64(timeout * 1000), keepsLoopAlive: false) { [unowned self] in
            finish(error: "timeout: \(ramp.paired) of \(ramp.total) paired")
        })
    }

    func clientDidOpen(_ client: BenchClient) { ramp.didOpen(client) }

    func client(_ client: BenchClient, didReceive event: ServerEvent, json: UnsafeRawBufferPointer) {
        switch event {
        case .paired:
            ramp.didPair(client)
            if ramp.allPaired { allPaired() }
        case .online, .waiting:
            break
        default:
            unexpected += 1
        }
    }

    func clientDidFail(_ client: BenchClient, reason: String) {
        ramp.didFail(client, reason: reason)
        if pairedSample == nil && ramp.done && !ramp.allPaired { finish(error: reason) }
    }

    func clientDidClose(_ client: BenchClient) {}

    private func allPaired() {
        pairedSample = ProcessSample.take(serverPID: serverPID)
        if name == "idle" {
            timers.append(BenchTimer(bench, after: UInt64(settleSeconds * 1000)) { [unowned self] in finish(error: nil) })
        } else {
            finish(error: nil)
        }
    }

    private func finish(error: String?) {
        guard result == nil else { return }
        let end = pairedSample ?? ProcessSample.take(serverPID: serverPID)
        let window = Window(start: baseline, end: end)
        let n = ramp.total
        var line = ResultLine(scenario: name)
        line.add("connections", n)
        line.add("paired", ramp.paired)
        line.add("seconds_to_pair", window.seconds)
        line.add("connects_per_s", Double(ramp.paired) / window.seconds, digits: 0)
        line.add("server_cpu_us_per_conn", window.serverCPU * 1e6 / Double(max(1, ramp.paired)), digits: 2)
        if name == "idle" {
            let rss = ProcessSample.rssKiB(pid: serverPID)
            line.add("server_rss_baseline_kib", baseline.serverRSSKiB)
            line.add("server_rss_kib", rss)
            line.add("server_rss_kib_per_conn", Double(rss - baseline.serverRSSKiB) / Double(max(1, ramp.paired)), digits: 3)
        }
        line.add("errors", ramp.failed + unexpected)
        line.addGenerator(window)
        if let error { line.add("error", error) } else if let first = ramp.firstError { line.add("first_error", first) }
        result = line
        bench.stop()
    }
}
