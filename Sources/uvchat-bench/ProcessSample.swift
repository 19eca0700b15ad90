import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// CPU time and resident memory of the server (from /proc) and of the generator itself (getrusage), taken at
/// the edges of a measured window.
struct ProcessSample {
    /// A cluster's other uvchatd nodes (`--pids`), whose CPU counts with the server's, and its redis-server
    /// (`--redis-pid`), counted apart. Set once from the options, before any sample.
    nonisolated(unsafe) static var otherServerPIDs: [Int32] = []
    nonisolated(unsafe) static var redisPID: Int32 = 0
    var serverCPU: Double
    var redisCPU: Double = 0
    var serverRSSKiB: Int
    var generatorCPU: Double
    var childrenCPU: Double
    var wall: UInt64

    static func take(serverPID: Int32) -> ProcessSample {
        ProcessSample(serverCPU: otherServerPIDs.reduce(cpuSeconds(pid: serverPID)) { $0 + cpuSeconds(pid: $1) },
                      redisCPU: redisPID > 0 ? cpuSeconds(pid: redisPID) : 0, serverRSSKiB: rssKiB(pid: serverPID),
                      generatorCPU: rusageSeconds(RUSAGE_SELF.rawValue), childrenCPU: rusageSeconds(RUSAGE_CHILDREN.rawValue),
                      wall: uv_hrtime())
    }

    /// utime + stime (fields 14 and 15 of /proc/PID/stat, after the parenthesised command name).
    static func cpuSeconds(pid: Int32) -> Double {
        guard let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return .nan }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so utime (field 14) is fields[11].
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return .nan }
        return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func rssKiB(pid: Int32) -> Int {
        guard let status = readFile("/proc/\(pid)/status") else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? -1
        }
        return -1
    }

    static func rusageSeconds(_ who: Int32) -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(who), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The difference between two samples.
struct Window {
    let start: ProcessSample
    let end: ProcessSample

    var seconds: Double { Double(end.wall &- start.wall) / 1e9 }
    var serverCPU: Double { end.serverCPU - start.serverCPU }
    var redisCPU: Double { end.redisCPU - start.redisCPU }
    var generatorCPU: Double { end.generatorCPU - start.generatorCPU }
    var childrenCPU: Double { end.childrenCPU - start.childrenCPU }
    /// Fraction of one core the generator used.
    var generatorLoad: Double { seconds > 0 ? generatorCPU / seconds : 0 }
    var serverLoad: Double { seconds > 0 ? serverCPU / seconds : 0 }
}
