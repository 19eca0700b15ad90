/// Opens `total` clients with at most `concurrency` connecting or upgrading at once (a burst of SYNs beyond
/// the server's listen backlog would be retried after a second and measure the kernel, not the server), and
/// counts how many opened, paired and failed.
final class ConnectionRamp {
    private let bench: BenchLoop
    private unowned let scenario: BenchScenario
    let total: Int
    let concurrency: Int
    private let bindSources: Bool
    private(set) var clients: [BenchClient] = []
    private(set) var opened = 0
    private(set) var paired = 0
    private(set) var failed = 0
    private(set) var firstError: String?
    private var connecting = 0
    private var starting = false

    init(bench: BenchLoop, scenario: BenchScenario, total: Int, concurrency: Int, bindSources: Bool) throws(BenchError) {
        self.bench = bench
        self.scenario = scenario
        self.total = total
        self.concurrency = max(1, concurrency)
        self.bindSources = bindSources
        if bindSources { try bench.useSourceAddresses(for: total) }
        clients.reserveCapacity(total)
    }

    var allPaired: Bool { paired == total }
    var done: Bool { paired + failed >= total }

    func start() {
        // A bind that fails synchronously reports back into didFail; the loop below picks up the slack.
        guard !starting else { return }
        starting = true
        defer { starting = false }
        while clients.count < total && connecting < concurrency {
            let client = BenchClient(index: clients.count, bench: bench, scenario: scenario)
            let source = bindSources ? bench.sources[min(client.index / bench.sourcePerAddress, bench.sources.count - 1)] : nil
            clients.append(client)
            connecting += 1
            client.connect(from: source)
        }
    }

    func didOpen(_ client: BenchClient) {
        client.wasOpened = true
        opened += 1
        connecting -= 1
        start()
    }

    func didPair(_ client: BenchClient) {
        guard !client.paired else { return }
        client.paired = true
        paired += 1
    }

    func didFail(_ client: BenchClient, reason: String) {
        failed += 1
        if firstError == nil { firstError = reason }
        if !client.wasOpened {
            connecting -= 1
            start()
        }
    }
}
