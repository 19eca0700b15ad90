/// `churn`: keeps C clients in flight, each living one session: connect, upgrade, pair, send one message,
/// receive the partner's one, close with 1000. A finished session is replaced at once. A session is one
/// client's life, so a chat between two clients is two sessions (the same unit as `connect`'s pair-member).
final class ChurnScenario: BenchScenario {
    private let bench: BenchLoop
    private let serverPID: Int32
    private let concurrency: Int
    private let seconds: Double
    private let warmup: Double
    /// Fixed-count mode (for callgrind): exactly this many sessions, no warm-up.
    private let sessionLimit: Int?
    private var clients: [BenchClient?] = []
    private var freeSlots: [Int] = []
    private var inFlight = 0
    private var launched = 0
    private var completed = 0
    private var closed = 0
    private var launching = true
    private var ledger = DeliveryLedger()
    private var failures = 0
    private var firstError: String?
    private var windowStart: ProcessSample?
    private var windowEnd: ProcessSample?
    private var completedAtStart = 0
    private var completedAtEnd = 0
    private var timers: [BenchTimer] = []
    private(set) var result: ResultLine?

    init(bench: BenchLoop, options: BenchOptions, serverPID: Int32) throws(BenchError) {
        self.bench = bench
        self.serverPID = serverPID
        concurrency = max(2, try options.int("concurrency", 100))
        seconds = try options.double("seconds", 5)
        warmup = try options.double("warmup", 0.5)
        if options.has("sessions") {
            let n = try options.int("sessions", 0)
            sessionLimit = n + n % 2
        } else {
            sessionLimit = nil
        }
    }

    func start(timeout: Double) {
        if sessionLimit != nil {
            windowStart = ProcessSample.take(serverPID: serverPID)
        } else {
            timers.append(BenchTimer(bench, after: UInt64(warmup * 1000)) { [unowned self] in
                completedAtStart = completed
                windowStart = ProcessSample.take(serverPID: serverPID)
            })
            timers.append(BenchTimer(bench, after: UInt64((warmup + seconds) * 1000)) { [unowned self] in
                stopWindow()
                launching = false
                drain(deadline: bench.now + 3_000_000_000)
            })
        }
        timers.append(BenchTimer(bench, after: UInt64(timeout * 1000), keepsLoopAlive: false) { [unowned self] in
            finish(error: "timeout: \(completed) sessions done, \(inFlight) in flight")
        })
        if sessionLimit == 0 { return finish(error: nil) }
        launch()
    }

    private func launch() {
        while launching && inFlight < concurrency && launched < (sessionLimit ?? Int.max) {
            // Slots are reused so that a sender's index (which travels in its message) stays small and valid.
            let slot = freeSlots.popLast() ?? clients.count
            if slot == clients.count { clients.append(nil) }
            let client = BenchClient(index: slot, bench: bench, scenario: self)
            clients[slot] = client
            inFlight += 1
            launched += 1
            client.connect(from: nil)
        }
    }

    func clientDidOpen(_ client: BenchClient) {}

    func client(_ client: BenchClient, didReceive event: ServerEvent, json: UnsafeRawBufferPointer) {
        switch event {
        case .paired:
            client.sent = 1
            client.sendMessage(seq: 1, stamp: 0)
        case .message:
            guard ledger.receive(json, by: client, senders: clients.count) != nil else { return }
            client.sessionDone = true
            client.close()
        case .online, .waiting:
            break
        default:
            ledger.other(event)
            client.close()
        }
    }

    func clientDidFail(_ client: BenchClient, reason: String) {
        failures += 1
        if firstError == nil { firstError = reason }
    }

    func clientDidClose(_ client: BenchClient) {
        inFlight -= 1
        clients[client.index] = nil
        freeSlots.append(client.index)
        closed += 1
        if client.sessionDone && client.closedOnPurpose { completed += 1 }
        if let sessionLimit, closed >= sessionLimit {
            stopWindow()
            return finish(error: nil)
        }
        launch()
    }

    private func stopWindow() {
        guard windowEnd == nil else { return }
        completedAtEnd = completed
        windowEnd = ProcessSample.take(serverPID: serverPID)
    }

    private func drain(deadline: UInt64) {
        // An odd client out waits for a partner that will not come; it does not hold the result back.
        if inFlight <= 1 || bench.now > deadline { return finish(error: nil) }
        timers.append(BenchTimer(bench, after: 10) { [unowned self] in drain(deadline: deadline) })
    }

    private func finish(error: String?) {
        guard result == nil else { return }
        stopWindow()
        let w = Window(start: windowStart ?? windowEnd!, end: windowEnd!)
        let count = completedAtEnd - completedAtStart
        var line = ResultLine(scenario: "churn")
        line.add("concurrency", concurrency)
        line.add("seconds", w.seconds)
        line.add("sessions", count)
        line.add("sessions_per_s", Double(count) / w.seconds, digits: 0)
        line.add("server_cpu_us_per_session", w.serverCPU * 1e6 / Double(max(1, count)), digits: 2)
        if ProcessSample.redisPID > 0 {
            // A cluster: each session is one queue call in Redis (its one shard): 1 / this is the queue's ceiling.
            line.add("redis_cpu_us_per_session", w.redisCPU * 1e6 / Double(max(1, count)), digits: 2)
            line.add("nodes", 1 + ProcessSample.otherServerPIDs.count)
        }
        line.add("close_first", bench.serverClosesFirst ? "server" : "client")
        line.add("messages_delivered", ledger.delivered)
        line.add("out_of_order", ledger.outOfOrder)
        line.add("wrong_partner", ledger.wrongPartner)
        line.add("server_errors", ledger.serverErrors)
        line.add("partner_left_before_message", ledger.partnerLeft)
        line.add("violations", ledger.violations(lost: 0))
        line.add("errors", failures)
        line.addGenerator(w)
        if let error { line.add("error", error) } else if let firstError { line.add("first_error", firstError) }
        result = line
        bench.stop()
    }
}
