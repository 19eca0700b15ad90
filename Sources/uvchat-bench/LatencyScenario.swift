/// `latency`: a fixed total rate R of chat messages spread round-robin over the senders of P pairs; each
/// message carries its send time, and the receiver records send-to-receipt time in a histogram. Messages
/// are released by a 1 ms timer, each stamped when it is written; how far the sender fell behind its schedule
/// is reported too, since a generator that falls behind hides latency (coordinated omission).
final class LatencyScenario: BenchScenario {
    private let bench: BenchLoop
    private let serverPID: Int32
    private let rate: Double
    private let seconds: Double
    private let warmup: Double
    private var ramp: ConnectionRamp!
    private var ledger = DeliveryLedger()
    private var histogram = Histogram()
    private var streamStart: UInt64 = 0
    private var totalSent = 0
    private var maxLag: UInt64 = 0
    private var sending = false
    private var windowStart: ProcessSample?
    private var windowEnd: ProcessSample?
    private var deliveredAtStart = 0
    private var deliveredAtEnd = 0
    private var ticker: BenchTimer?
    private var timers: [BenchTimer] = []
    private var failures = 0
    private(set) var result: ResultLine?

    init(bench: BenchLoop, options: BenchOptions, serverPID: Int32) throws(BenchError) {
        self.bench = bench
        self.serverPID = serverPID
        rate = max(1, try options.double("rate", 20_000))
        seconds = try options.double("seconds", 10)
        warmup = try options.double("warmup", 1)
        let pairs = max(1, try options.int("pairs", 50))
        ramp = try ConnectionRamp(bench: bench, scenario: self, total: 2 * pairs, concurrency: 100,
                                  bindSources: 2 * pairs > 20_000)
    }

    func start(timeout: Double) {
        ramp.start()
        timers.append(BenchTimer(bench, after: UInt64(timeout * 1000), keepsLoopAlive: false) { [unowned self] in
            finish(error: "timeout: \(ramp.paired) of \(ramp.total) paired")
        })
    }

    func clientDidOpen(_ client: BenchClient) { ramp.didOpen(client) }

    func client(_ client: BenchClient, didReceive event: ServerEvent, json: UnsafeRawBufferPointer) {
        switch event {
        case .message:
            let now = bench.now
            guard let fields = ledger.receive(json, by: client, senders: ramp.clients.count) else { return }
            if fields.stamp >= UInt64(warmup * 1e9) { histogram.record(now - (streamStart + fields.stamp)) }
        case .paired:
            ramp.didPair(client)
            if ramp.allPaired { beginStreaming() }
        case .online, .waiting:
            break
        default:
            ledger.other(event)
        }
    }

    func clientDidFail(_ client: BenchClient, reason: String) {
        failures += 1
        ramp.didFail(client, reason: reason)
        if !sending && ramp.done && !ramp.allPaired { finish(error: reason) }
    }

    func clientDidClose(_ client: BenchClient) {}

    private func beginStreaming() {
        sending = true
        streamStart = bench.now
        ticker = BenchTimer(bench, after: 1, repeat: 1) { [unowned self] in tick() }
        timers.append(BenchTimer(bench, after: UInt64(warmup * 1000)) { [unowned self] in
            deliveredAtStart = ledger.delivered
            windowStart = ProcessSample.take(serverPID: serverPID)
        })
        timers.append(BenchTimer(bench, after: UInt64((warmup + seconds) * 1000)) { [unowned self] in
            deliveredAtEnd = ledger.delivered
            windowEnd = ProcessSample.take(serverPID: serverPID)
            sending = false
            ticker?.cancel()
            drain(deadline: bench.now + 3_000_000_000)
        })
    }

    private func tick() {
        guard sending else { return }
        let now = bench.now
        let due = Int(Double(now - streamStart) * rate / 1e9)
        let clients = ramp.clients
        while totalSent < due {
            let intended = streamStart + UInt64(Double(totalSent) * 1e9 / rate)
            if now > intended { maxLag = max(maxLag, now - intended) }
            let sender = clients[totalSent % clients.count]
            sender.sent += 1
            sender.sendMessage(seq: sender.sent, stamp: bench.now - streamStart)
            totalSent += 1
        }
    }

    private func drain(deadline: UInt64) {
        if ledger.delivered >= totalSent || bench.now > deadline { return finish(error: nil) }
        timers.append(BenchTimer(bench, after: 10) { [unowned self] in drain(deadline: deadline) })
    }

    private func finish(error: String?) {
        guard result == nil else { return }
        let end = windowEnd ?? ProcessSample.take(serverPID: serverPID)
        let w = Window(start: windowStart ?? end, end: end)
        let count = (windowEnd == nil ? ledger.delivered : deliveredAtEnd) - deliveredAtStart
        var line = ResultLine(scenario: "latency")
        line.add("pairs", ramp.total / 2)
        line.add("target_msgs_per_s", rate, digits: 0)
        line.add("msgs_per_s", Double(count) / w.seconds, digits: 0)
        line.add("seconds", w.seconds)
        line.add("samples", Int(histogram.total))
        for (key, p) in [("p50_us", 50.0), ("p90_us", 90.0), ("p99_us", 99.0), ("p99_9_us", 99.9), ("p99_99_us", 99.99)] {
            line.add(key, Double(histogram.value(atPercentile: p)) / 1000, digits: 1)
        }
        line.add("max_us", Double(histogram.max) / 1000, digits: 1)
        line.add("max_schedule_lag_us", Double(maxLag) / 1000, digits: 1)
        line.add("server_cpu_us_per_msg", w.serverCPU * 1e6 / Double(max(1, count)), digits: 3)
        ledger.report(into: &line, sent: totalSent)
        line.add("errors", failures)
        line.addGenerator(w)
        if let error { line.add("error", error) }
        result = line
        bench.stop()
    }
}
