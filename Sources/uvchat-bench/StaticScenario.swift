#if canImport(Glibc)
import Glibc
#endif

/// `static`: Debian's `wrk` (one thread, keep-alive) against a static path; server CPU per request from
/// /proc around the run, and wrk's own CPU as the generator's load.
struct StaticScenario {
    let host: String
    let port: Int
    let serverPID: Int32
    let connections: Int
    let seconds: Int
    let path: String

    init(options: BenchOptions, serverPID: Int32) throws(BenchError) {
        host = options.string("host", "127.0.0.1")
        port = try options.int("port", 8080)
        self.serverPID = serverPID
        connections = max(1, try options.int("connections", 50))
        seconds = max(1, try options.int("seconds", 5))
        path = options.string("path", "/")
        guard path.allSatisfy({ $0.isLetter || $0.isNumber || "/._-".contains($0) }) else {
            throw BenchError("--path may hold only letters, digits and / . _ -")
        }
    }

    func run() throws(BenchError) -> ResultLine {
        let output = "/tmp/uvchat-bench-wrk-\(getpid()).txt"
        defer { unlink(output) }
        let command = "wrk -t1 -c\(connections) -d\(seconds)s http://\(host):\(port)\(path) > \(output) 2>&1"
        let start = ProcessSample.take(serverPID: serverPID)
        let status = system(command)
        let end = ProcessSample.take(serverPID: serverPID)
        guard status == 0, let text = ProcessSample.readFile(output) else {
            throw BenchError("wrk failed (exit \(status)); is the Debian package wrk installed? \(ProcessSample.readFile(output) ?? "")")
        }
        let window = Window(start: start, end: end)
        let requests = Self.number(in: text, before: " requests in") ?? 0
        let non2xx = Self.number(in: text, after: "Non-2xx or 3xx responses:") ?? 0
        let socketErrors = Self.socketErrors(text)
        var line = ResultLine(scenario: "static")
        line.add("path", path)
        line.add("connections", connections)
        line.add("seconds", window.seconds)
        line.add("requests", Int(requests))
        line.add("requests_per_s", requests / window.seconds, digits: 0)
        line.add("server_cpu_us_per_request", window.serverCPU * 1e6 / max(1, requests), digits: 3)
        line.add("non_2xx_3xx", Int(non2xx))
        line.add("socket_errors", socketErrors)
        line.add("errors", Int(non2xx) + socketErrors)
        line.addGenerator(window, cpu: window.childrenCPU)
        return line
    }

    /// The number that ends just before `marker` ("  123456 requests in 5.00s").
    static func number(in text: String, before marker: String) -> Double? {
        for line in text.split(separator: "\n") where line.contains(marker) {
            return line.split(separator: " ").first.flatMap { Double($0) }
        }
        return nil
    }

    static func number(in text: String, after marker: String) -> Double? {
        for line in text.split(separator: "\n") where line.contains(marker) {
            return line.split(separator: " ").last.flatMap { Double($0) }
        }
        return nil
    }

    /// "Socket errors: connect 0, read 0, write 0, timeout 0", summed.
    static func socketErrors(_ text: String) -> Int {
        for line in text.split(separator: "\n") where line.contains("Socket errors:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { Int($0) }.reduce(0, +)
        }
        return 0
    }
}
