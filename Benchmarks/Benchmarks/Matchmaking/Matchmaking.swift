import Benchmark
import UVChat
import UVChatBenchSupport

// `Matchmaker`, steady state: one long-lived matchmaker per benchmark (its node, entry and list arrays and its
// dictionaries have grown during warm-up and are reused), one unit of work per pairing or per cancelled wait
// (1000 per measured iteration). Interests are passed as the arrays the server keeps per connection (parsed once
// when the WebSocket opens), so the loop only hands them over.
// - pair random: A enqueues with no interests and waits, B enqueues with none and is paired with A;
// - pair by interest: A ["music","movies","travel"] waits, B ["games","movies"] is paired with A on "movies";
// - pair by interest, 1000 waiting: the same with 1000 other clients waiting on tags nobody shares, to show the
//   match costs O(newcomer's tags), not O(queue);
// - enqueue+remove random / enqueue+remove interests: a client queues and leaves before anyone comes (`remove`,
//   what `next`/`stop`/close do while waiting).

/// One long-lived matchmaker and the ids of the clients that come to it.
final class Queue {
    let matchmaker = Matchmaker()   // the default 5 s interest timeout; nothing here waits that long
    let now: UInt64 = 1_000_000_000_000
    private var nextID: UInt32 = 1_000_000

    init(waitingOnUnsharedTags: Int) {
        for i in 0..<waitingOnUnsharedTags {
            let pairing = matchmaker.enqueue(PeerID(rawValue: UInt32(i)), interests: ["waiting-\(i)"], now: now)
            precondition(pairing == nil)
        }
        precondition(matchmaker.count == waitingOnUnsharedTags)
    }

    /// Fresh ids from a bounded range, like the server's reused connection slot numbers.
    @inline(__always)
    func id() -> PeerID {
        nextID = nextID == 1_999_999 ? 1_000_000 : nextID + 1
        return PeerID(rawValue: nextID)
    }
}

let benchmarks: @Sendable () -> Void = {
    let none: [String] = []
    let interestsA = ["music", "movies", "travel"]
    let interestsB = ["games", "movies"]

    Benchmark("pair random", configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, queue: Queue) in
        let mm = queue.matchmaker, now = queue.now
        for _ in benchmark.scaledIterations {
            let a = queue.id(), b = queue.id()
            blackHole(mm.enqueue(a, interests: none, now: now))
            blackHole(mm.enqueue(b, interests: none, now: now))
        }
    } setup: {
        let queue = Queue(waitingOnUnsharedTags: 0)
        let a = queue.id(), b = queue.id()
        guard queue.matchmaker.enqueue(a, interests: none, now: queue.now) == nil,
              let p = queue.matchmaker.enqueue(b, interests: none, now: queue.now),
              p.a == a, p.b == b, p.common.isEmpty, p.random,
              queue.matchmaker.count == 0 else { fatalError("pair random fixture") }
        return queue
    }

    for waiting in [0, 1000] {
        let name = waiting == 0 ? "pair by interest" : "pair by interest, \(waiting) waiting"
        Benchmark(name, configuration: .uvchat(allocationFree: false)) { (benchmark: Benchmark, queue: Queue) in
            let mm = queue.matchmaker, now = queue.now
            for _ in benchmark.scaledIterations {
                let a = queue.id(), b = queue.id()
                blackHole(mm.enqueue(a, interests: interestsA, now: now))
                blackHole(mm.enqueue(b, interests: interestsB, now: now))
            }
        } setup: {
            let queue = Queue(waitingOnUnsharedTags: waiting)
            let a = queue.id(), b = queue.id()
            guard queue.matchmaker.enqueue(a, interests: interestsA, now: queue.now) == nil,
                  let p = queue.matchmaker.enqueue(b, interests: interestsB, now: queue.now),
                  p.a == a, p.b == b, p.common == ["movies"], !p.random,
                  queue.matchmaker.count == waiting else { fatalError("\(name) fixture") }
            return queue
        }
    }

    for (label, interests) in [("random", none), ("interests", interestsA)] {
        Benchmark("enqueue+remove \(label)", configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, queue: Queue) in
            let mm = queue.matchmaker, now = queue.now
            for _ in benchmark.scaledIterations {
                let a = queue.id()
                blackHole(mm.enqueue(a, interests: interests, now: now))
                mm.remove(a)
            }
        } setup: {
            let queue = Queue(waitingOnUnsharedTags: 0)
            let a = queue.id()
            guard queue.matchmaker.enqueue(a, interests: interests, now: queue.now) == nil,
                  queue.matchmaker.count == 1 else { fatalError("enqueue \(label) fixture") }
            queue.matchmaker.remove(a)
            guard queue.matchmaker.count == 0 else { fatalError("remove \(label) fixture") }
            return queue
        }
    }
}
