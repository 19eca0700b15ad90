import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// uvchat-bench: the load generator behind `make bench` (issue 8). One process, one libuv loop, many
/// sockets; one JSON line per run on stdout, diagnostics on stderr.
enum BenchMain {
    static func run() -> Int32 {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            let options = try BenchOptions(arguments)
            if options.scenario == "table" {
                guard let path = options.positional.first, let text = ProcessSample.readFile(path) else {
                    throw BenchError("table: give the results file (one JSON line per scenario)")
                }
                print(ResultTable(jsonLines: text).markdown, terminator: "")
                return 0
            }
            if options.scenario == "help" || options.scenario == "--help" || options.scenario == "-h" {
                print(BenchOptions.usage)
                return 0
            }
            uvc_ignore_sigpipe()
            let serverPID = Int32(try options.int("pid", 0))
            if serverPID == 0 { warn("no --pid given: server CPU and RSS figures are meaningless") }
            let timeout = try options.double("timeout", 180)
            let line: ResultLine
            switch options.scenario {
            case "static":
                line = try StaticScenario(options: options, serverPID: serverPID).run()
            case "idle", "connect", "relay", "latency", "churn":
                let wanted = switch options.scenario {
                case "idle", "connect": try options.int("connections", 20_000)
                case "churn": try options.int("concurrency", 100)
                default: 2 * (try options.int("pairs", 50))
                }
                raiseDescriptorLimit(to: wanted + 64)
                let bench = try BenchLoop(host: options.string("host", "127.0.0.1"), port: try options.int("port", 8080),
                                          path: options.string("path", "/ws"),
                                          version2: try options.int("protocol", 1) == 2)
                // A cluster: clients spread over its nodes; CPU counted over all of them, and Redis apart.
                let ports = options.string("ports", "").split(separator: ",").compactMap { Int($0) }
                switch options.string("close", "server") {
                case "server": bench.serverClosesFirst = true
                case "client": bench.serverClosesFirst = false
                default: throw BenchError("--close is server or client")
                }
                try bench.useServers(host: options.string("host", "127.0.0.1"), ports: ports)
                ProcessSample.otherServerPIDs = options.string("pids", "").split(separator: ",").compactMap { Int32($0) }
                ProcessSample.redisPID = Int32(try options.int("redis-pid", 0))
                line = try runLoopScenario(options.scenario, bench: bench, options: options, serverPID: serverPID, timeout: timeout)
            default:
                throw BenchError("unknown scenario \(options.scenario)\n" + BenchOptions.usage)
            }
            line.print()
            return line.json.contains("\"error\":") ? 1 : 0
        } catch {
            warn("\(error)")
            return 2
        }
    }

    private static func runLoopScenario(_ name: String, bench: BenchLoop, options: BenchOptions, serverPID: Int32,
                                        timeout: Double) throws(BenchError) -> ResultLine {
        switch name {
        case "idle", "connect":
            let s = try RampScenario(name: name, bench: bench, options: options, serverPID: serverPID)
            s.start(timeout: timeout)
            bench.run()
            return s.result ?? ResultLine(scenario: name).withError("the loop ended early")
        case "relay":
            let s = try RelayScenario(bench: bench, options: options, serverPID: serverPID)
            s.start(timeout: timeout)
            bench.run()
            return s.result ?? ResultLine(scenario: name).withError("the loop ended early")
        case "latency":
            let s = try LatencyScenario(bench: bench, options: options, serverPID: serverPID)
            s.start(timeout: timeout)
            bench.run()
            return s.result ?? ResultLine(scenario: name).withError("the loop ended early")
        default:
            let s = try ChurnScenario(bench: bench, options: options, serverPID: serverPID)
            s.start(timeout: timeout)
            bench.run()
            return s.result ?? ResultLine(scenario: name).withError("the loop ended early")
        }
    }

    /// Each client is a descriptor; root may lift the hard limit too (up to fs.nr_open).
    private static func raiseDescriptorLimit(to wanted: Int) {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if Int(limit.rlim_max) < wanted {
            var raised = rlimit(rlim_cur: rlim_t(wanted), rlim_max: rlim_t(wanted))
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return }
        }
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if Int(limit.rlim_cur) < wanted {
            warn("RLIMIT_NOFILE is \(limit.rlim_cur), below the \(wanted) descriptors this run wants")
        }
    }

    static func warn(_ text: String) {
        let line = "uvchat-bench: " + text + "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

extension ResultLine {
    func withError(_ text: String) -> ResultLine {
        var copy = self
        copy.add("error", text)
        return copy
    }
}

exit(BenchMain.run())
