import CLibUV

/// `relay`: P pairs stream chat messages both ways, each sender keeping at most W messages that its partner
/// has not yet received (the partner's receipt is the acknowledgement, seen directly since both ends live in
/// this process). Reports delivered messages per second and server CPU per delivered message over a window
/// that starts after a warm-up, then stops sending and checks that everything arrived, in order.
final class RelayScenario: BenchScenario {
    private let bench: BenchLoop
    private let serverPID: Int32
    private let window: Int
    private let seconds: Double
    private let warmup: Double
    /// Fixed-count mode (for callgrind): this many messages in all, no warm-up, done when all arrived.
    private let messages: Int?
    private var ramp: ConnectionRamp!
    private var ledger = DeliveryLedger()
    private var sending = false
    private var totalSent = 0
    private var windowStart: ProcessSample?
    private var windowEnd: ProcessSample?
    private var deliveredAtStart = 0
    private var deliveredAtEnd = 0
    private var timers: [BenchTimer] = []
    private var failures = 0
    private(set) var result: ResultLine?

    init(bench: BenchLoop, options: BenchOptions, serverPID: Int32) throws(BenchError) {
        self.bench = bench
        self.serverPID = serverPID
        window = max(1, try options.int("window", 16))
        seconds = try options.double("seconds", 10)
        warmup = try options.double("warmup", 1)
        messages = options.has("messages") ? try options.int("messages", 0) : nil
        let pairs = max(1, try options.int("pairs", 50))
        ramp = try ConnectionRamp(bench: bench, scenario: self, total: 2 * pairs,
                                  concurrency: max(1, try options.int("ramp-concurrency", 100)),
                                  bindSources: 2 * pairs > 20_000)
    }

    func start(timeout: Double) {
        ramp.start()
        timers.append(BenchTimer(bench, after: UInt64(timeout * 1000), keepsLoopAlive: false) { [unowned self] in
            finish(error: "timeout: \(ramp.paired) of \(ramp.total) paired, \(ledger.delivered) of \(totalSent) delivered")
        })
    }

    func clientDidOpen(_ client: BenchClient) {
        openedAt[client.index] = uv_hrtime()
        ramp.didOpen(client)
    }

    /// Upgrade to `paired` of every client that was paired at once (the second of each pair): with a cluster,
    /// one queue call in Redis and, across nodes, the pairing's records.
    private var openedAt: [Int: UInt64] = [:]
    private var pairing = Histogram()
    private var pairingSamples = 0

    func client(_ client: BenchClient, didReceive event: ServerEvent, json: UnsafeRawBufferPointer) {
        switch event {
        case .message:
            guard let fields = ledger.receive(json, by: client, senders: ramp.clients.count) else { return }
            let sender = ramp.clients[fields.sender]
            sender.unacknowledged -= 1
            pump(sender)
            if let messages, ledger.delivered >= messages { stopWindow(); finish(error: nil) }
        case .paired:
            if let opened = openedAt.removeValue(forKey: client.index) {
                pairing.record((uv_hrtime() - opened) / 1000)
                pairingSamples += 1
            }
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

    private func pump(_ client: BenchClient) {
        while sending && client.unacknowledged < window && client.sent < client.quota {
            client.sent += 1
            client.unacknowledged += 1
            totalSent += 1
            client.sendMessage(seq: client.sent, stamp: 0)
        }
    }

    private func beginStreaming() {
        sending = true
        if let messages {
            let each = messages / ramp.total
            for (i, client) in ramp.clients.enumerated() { client.quota = each + (i < messages % ramp.total ? 1 : 0) }
            startWindow()
            if messages == 0 { return finish(error: nil) }
        } else {
            timers.append(BenchTimer(bench, after: UInt64(warmup * 1000)) { [unowned self] in startWindow() })
            timers.append(BenchTimer(bench, after: UInt64((warmup + seconds) * 1000)) { [unowned self] in
                stopWindow()
                sending = false
                drain(deadline: bench.now + 3_000_000_000)
            })
        }
        for client in ramp.clients { pump(client) }
    }

    private func startWindow() {
        deliveredAtStart = ledger.delivered
        windowStart = ProcessSample.take(serverPID: serverPID)
    }

    private func stopWindow() {
        guard windowEnd == nil else { return }
        deliveredAtEnd = ledger.delivered
        windowEnd = ProcessSample.take(serverPID: serverPID)
    }

    private func drain(deadline: UInt64) {
        if ledger.delivered >= totalSent || bench.now > deadline { return finish(error: nil) }
        timers.append(BenchTimer(bench, after: 10) { [unowned self] in drain(deadline: deadline) })
    }

    private func finish(error: String?) {
        guard result == nil else { return }
        stopWindow()
        let w = Window(start: windowStart ?? windowEnd!, end: windowEnd!)
        let count = deliveredAtEnd - deliveredAtStart
        var line = ResultLine(scenario: "relay")
        line.add("pairs", ramp.total / 2)
        line.add("window", window)
        line.add("message_text_bytes", ChatPayload.textLength)
        line.add("seconds", w.seconds)
        line.add("delivered", count)
        line.add("msgs_per_s", Double(count) / w.seconds, digits: 0)
        line.add("server_cpu_us_per_msg", w.serverCPU * 1e6 / Double(max(1, count)), digits: 3)
        line.add("generator_cpu_us_per_msg", w.generatorCPU * 1e6 / Double(max(1, count)), digits: 3)
        if ProcessSample.redisPID > 0 {
            line.add("redis_cpu_us_per_msg", w.redisCPU * 1e6 / Double(max(1, count)), digits: 3)
            line.add("nodes", 1 + ProcessSample.otherServerPIDs.count)
        }
        if pairingSamples > 0 {
            line.add("pairing_p50_us", Int(pairing.value(atPercentile: 50)))
            line.add("pairing_p99_us", Int(pairing.value(atPercentile: 99)))
        }
        ledger.report(into: &line, sent: totalSent)
        line.add("errors", failures)
        line.addGenerator(w)
        if let error { line.add("error", error) }
        result = line
        bench.stop()
    }
}
