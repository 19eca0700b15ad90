import Testing
@testable import UVChat


private let second: UInt64 = 1_000_000_000

@Suite struct MatchmakerTests {
    @Test func tenClientsWithoutInterestsPairInArrivalOrder() {
        let mm = Matchmaker()
        var pairs: [Pairing] = []
        for n in 0..<10 {
            let p = mm.enqueue(peer(UInt32(n)), interests: [], now: UInt64(n))
            #expect((p == nil) == (n % 2 == 0))
            if let p { pairs.append(p) }
        }
        #expect(pairs == stride(from: UInt32(0), to: 10, by: 2).map { Pairing(a: peer($0), b: peer($0 + 1), common: [], random: true) })
        #expect(mm.count == 0)
    }

    @Test func waitingClientsAreServedFirstInFirstOut() {
        // Ten clients wait, each with its own tag; when their waits run out they are served in arrival order.
        let mm = Matchmaker()
        for n in 0..<10 { #expect(mm.enqueue(peer(UInt32(n)), interests: ["t\(n)"], now: UInt64(n)) == nil) }
        let pairs = mm.expire(now: 10 * second)
        #expect(pairs.map { [$0.a.rawValue, $0.b.rawValue] } == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    }

    @Test func interestMatchPicksTheLongestWaitingSharer() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: ["dogs", "music"], now: 1) == nil)
        #expect(mm.enqueue(peer(3), interests: ["chess"], now: 2) == nil)
        #expect(mm.enqueue(peer(4), interests: ["music", "jazz", "dogs"], now: 3)
                == Pairing(a: peer(2), b: peer(4), common: ["music", "dogs"], random: false))
        #expect(mm.count == 2)
        #expect(!mm.isQueued(peer(2)) && !mm.isQueued(peer(4)))
        // 1 waited longer than 3; the newcomer shares a tag with both and gets 1.
        #expect(mm.enqueue(peer(5), interests: ["chess", "cats"], now: 4) == Pairing(a: peer(1), b: peer(5), common: ["cats"], random: false))
        #expect(mm.enqueue(peer(6), interests: ["x", "chess"], now: 5) == Pairing(a: peer(3), b: peer(6), common: ["chess"], random: false))
    }

    @Test func commonListsEverySharedTagInTheNewcomersOrder() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["a", "b", "c"], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: ["c", "x", "a"], now: 1) == Pairing(a: peer(1), b: peer(2), common: ["c", "a"], random: false))
    }

    @Test func noSharedInterestMeansWaiting() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: ["dogs"], now: 0) == nil)
        #expect(mm.count == 2 && mm.isQueued(peer(1)) && mm.isQueued(peer(2)))
    }

    @Test func noInterestNewcomerDoesNotTakeAClientStillInItsInterestWait() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: [], now: 1) == nil)
        #expect(mm.count == 2)
        // An interest newcomer does not take the random client either: it waits for its own timeout.
        #expect(mm.enqueue(peer(3), interests: ["dogs"], now: 2) == nil)
        #expect(mm.count == 3)
    }

    @Test func twoExpiredInterestClientsPairAtRandom() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: ["dogs"], now: 1 * second) == nil)
        #expect(mm.expire(now: 5 * second - 1) == [])
        #expect(mm.expire(now: 5 * second) == [])                 // 1 may now take anyone; nobody else may yet
        #expect(mm.count == 2)
        #expect(mm.expire(now: 6 * second) == [Pairing(a: peer(1), b: peer(2), common: [], random: true)])
        #expect(mm.count == 0)
    }

    @Test func expiredClientPairsWithAWaitingNoInterestClient() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: [], now: 1) == nil)
        #expect(mm.expire(now: 5 * second) == [Pairing(a: peer(1), b: peer(2), common: [], random: true)])
    }

    @Test func noInterestNewcomerTakesAnExpiredClient() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.expire(now: 5 * second) == [])
        #expect(mm.enqueue(peer(2), interests: [], now: 6 * second) == Pairing(a: peer(1), b: peer(2), common: [], random: true))
    }

    @Test func expiredClientStillMatchesBySharedInterest() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.expire(now: 5 * second) == [])
        #expect(mm.enqueue(peer(2), interests: ["cats"], now: 6 * second) == Pairing(a: peer(1), b: peer(2), common: ["cats"], random: false))
        #expect(mm.nextDeadline == nil)
    }

    @Test func nextDeadlineIsTheOldestPendingInterestWait() {
        let mm = Matchmaker(interestTimeoutNanos: 100)
        #expect(mm.nextDeadline == nil)
        #expect(mm.enqueue(peer(1), interests: [], now: 0) == nil)
        #expect(mm.nextDeadline == nil)                            // no interests, no deadline
        #expect(mm.enqueue(peer(2), interests: ["a"], now: 10) == nil)
        #expect(mm.enqueue(peer(3), interests: ["b"], now: 20) == nil)
        #expect(mm.nextDeadline == 110)
        mm.remove(peer(2))
        #expect(mm.nextDeadline == 120)
        #expect(mm.expire(now: 120) == [Pairing(a: peer(1), b: peer(3), common: [], random: true)])
        #expect(mm.nextDeadline == nil)
        #expect(mm.enqueue(peer(4), interests: ["c"], now: UInt64.max - 5) == nil)
        #expect(mm.nextDeadline == UInt64.max)                    // saturates instead of wrapping
    }

    @Test func removedClientsNeverPair() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: [], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: ["cats"], now: 0) == nil)
        mm.remove(peer(1))
        mm.remove(peer(2))
        #expect(!mm.isQueued(peer(1)) && !mm.isQueued(peer(2)) && mm.count == 0)
        #expect(mm.enqueue(peer(3), interests: [], now: 1) == nil)
        #expect(mm.enqueue(peer(4), interests: ["cats"], now: 1) == nil)
        #expect(mm.expire(now: 10 * second) == [Pairing(a: peer(3), b: peer(4), common: [], random: true)])
        mm.remove(peer(99))                                      // not queued: no-op
        mm.remove(peer(3))                                       // already paired: no-op
        #expect(mm.count == 0)
    }

    @Test func reQueueingAnIdNeverPairsItWithItself() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: [], now: 0) == nil)
        #expect(mm.enqueue(peer(1), interests: [], now: 1) == nil)
        #expect(mm.count == 1)
        #expect(mm.enqueue(peer(1), interests: ["a"], now: 2) == nil)
        #expect(mm.enqueue(peer(1), interests: ["a"], now: 3) == nil)
        #expect(mm.count == 1)
        #expect(mm.nextDeadline == 3 + 5 * second)
        #expect(mm.expire(now: 10 * second) == [])
        #expect(mm.enqueue(peer(1), interests: [], now: 11 * second) == nil)
        #expect(mm.count == 1)
        #expect(mm.enqueue(peer(2), interests: ["a"], now: 12 * second) == nil)   // 1 no longer has tag "a"
    }

    @Test func duplicateTagsInTheInputAreHarmless() {
        let mm = Matchmaker()
        #expect(mm.enqueue(peer(1), interests: ["a", "a"], now: 0) == nil)
        #expect(mm.enqueue(peer(2), interests: ["a", "a"], now: 1) == Pairing(a: peer(1), b: peer(2), common: ["a"], random: false))
        #expect(mm.count == 0)
        #expect(mm.enqueue(peer(3), interests: ["a"], now: 2) == nil)
    }

    @Test func hundredThousandClientsQueueRemoveAndPair() {
        let mm = Matchmaker(interestTimeoutNanos: 1_000)
        let n: UInt32 = 100_000
        // Distinct tags: nobody pairs on arrival.
        for i in 0..<n { #expect(mm.enqueue(peer(i), interests: ["t\(i)", "u\(i)"], now: UInt64(i)) == nil) }
        #expect(mm.count == Int(n))
        // Remove every odd client, starting from the middle of the queue.
        for i in stride(from: n / 2 + 1, to: n, by: 2) { mm.remove(peer(i)) }
        for i in stride(from: UInt32(1), to: n / 2, by: 2) { mm.remove(peer(i)) }
        #expect(mm.count == Int(n) / 2)
        #expect(!mm.isQueued(peer(50_001)) && mm.isQueued(peer(50_000)))
        // A newcomer sharing a tag with client 50,000 finds it at once, and not the removed 50,001.
        #expect(mm.enqueue(peer(n), interests: ["t50001", "zzz", "t50000"], now: UInt64(n))
                == Pairing(a: peer(50_000), b: peer(n), common: ["t50000"], random: false))
        #expect(mm.nextDeadline == 1_000)
        // Every interest wait runs out: they pair in FIFO order, oldest first, each exactly once.
        let pairs = mm.expire(now: UInt64(n) + 2_000)
        let remaining = Int(n) / 2 - 1
        #expect(pairs.count == remaining / 2)
        #expect(pairs.first == Pairing(a: peer(0), b: peer(2), common: [], random: true))
        #expect(pairs.allSatisfy { $0.a.rawValue < $0.b.rawValue && $0.a.rawValue % 2 == 0 && $0.b.rawValue % 2 == 0 && $0.random })
        #expect(Set(pairs.flatMap { [$0.a, $0.b] }).count == pairs.count * 2)
        #expect(!pairs.contains { $0.a.rawValue == 50_000 || $0.b.rawValue == 50_000 })
        #expect(mm.count == remaining % 2)
        #expect(mm.nextDeadline == nil)
        // The queue is reusable afterwards, and its free slots are recycled.
        if remaining % 2 == 1 {
            #expect(mm.enqueue(peer(n + 1), interests: [], now: UInt64(n) + 3_000) != nil)
        }
        #expect(mm.count == 0)
        #expect(mm.enqueue(peer(n + 2), interests: ["t0"], now: 0) == nil)
    }
}
