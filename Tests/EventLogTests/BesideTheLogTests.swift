import Events
import Foundation
import Logging
import NIOConcurrencyHelpers
import TestSupport
import Testing

@testable import EventLog

/// The types the log hands out for what Parley keeps in Redis beside it, each against the
/// real Redis.
@Suite("Consumer groups, leases, dead letters, the reader and signals against real Redis")
struct BesideTheLogTests {
    @Test func aConsumerGroupReadsAcknowledgesHandsOverAndMeasuresItsLag() async throws {
        let t = try TestLog()
        let u = try await t.users("cg1", "cg2", "cg3")
        let a = t.log.consumerGroup("proj", partition: 0, consumer: "a")
        // A read before the group exists creates it, from the start of the stream.
        let first = try await a.read(.new, count: 2)
        #expect(first.count == 2)
        #expect(try await a.lag()?.events == 3)  // one never read, two read and not acknowledged
        // Read and not acknowledged: still pending for a, and handed over to b by claimAll.
        #expect(try await a.read(.pending, count: 10).map(\.id) == first.map(\.id))
        let b = t.log.consumerGroup("proj", partition: 0, consumer: "b")
        try await b.claimAll()
        #expect(try await a.read(.pending, count: 10).isEmpty)
        #expect(try await b.read(.pending, count: 10).map(\.id) == first.map(\.id))
        try await b.acknowledge(first.map(\.id))
        let rest = try await b.read(.new, count: 10)
        #expect(rest.count == 1 && u.count == 3)
        try await b.acknowledge(rest.map(\.id))
        #expect(try await b.lag() == ConsumerGroup.Lag(events: 0, milliseconds: 0))
        // a has nothing pending and is idle: deleted once idle longer than asked; b is kept.
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await b.deleteIdleConsumers(idleMs: 60_000) == 0)
        #expect(try await b.deleteIdleConsumers(idleMs: 10) == 1)
        #expect(try await t.log.consumerGroup("other", partition: 0, consumer: "x").lag() == nil)
        try await t.cleanUp()
    }

    @Test func aLeaseHasOneHolderRenewsOnlyItsOwnAndIsReleasedOnlyByItsHolder() async throws {
        let t = try TestLog()
        let mine = t.log.lease("proj", partition: 0, owner: "me", ttl: .seconds(30))
        let theirs = t.log.lease("proj", partition: 0, owner: "them", ttl: .seconds(30))
        #expect(try await mine.acquire())
        #expect(try await mine.acquire())  // a renewal
        #expect(try await !theirs.acquire())
        try await theirs.release()  // not theirs to release
        #expect(try await mine.holder() == "me")
        try await mine.release()
        #expect(try await mine.holder() == nil)
        #expect(try await theirs.acquire())
        try await theirs.release()

        // Not renewed, a lease expires and anyone may take it.
        let brief = t.log.lease("proj", partition: 1, owner: "me", ttl: .milliseconds(200))
        #expect(try await brief.acquire())
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await t.log.lease("proj", partition: 1, owner: "them").acquire())
        #expect(try await !brief.acquire())

        // Work longer than the lease keeps it, renewed meanwhile.
        // (A 4 s lease, renewed every third of it: a loaded machine that delays one renewal by a second still keeps it.)
        let working = t.log.lease("proj", partition: 2, owner: "me", ttl: .seconds(4))
        #expect(try await working.acquire())
        let kept = try await PartitionLease.renewing([working]) {
            try await Task.sleep(for: .seconds(5))
            return try await working.holder()
        }
        #expect(kept == "me")
        // A renewal that finds the lease taken stops the work.
        let stolen = t.log.lease("proj", partition: 3, owner: "me", ttl: .milliseconds(300))
        #expect(try await stolen.acquire())
        await #expect(throws: PartitionLease.Lost.self) {
            try await PartitionLease.renewing([stolen]) {
                try await t.redis.command(["SET", stolen.key, "thief"])
                try await Task.sleep(for: .seconds(30))
            }
        }
        try await t.cleanUp()
    }

    @Test func deadLettersAreParkedListedAndRequeued() async throws {
        let t = try TestLog()
        let dead = t.log.deadLetters("proj")
        try await dead.park(partition: 0, entryID: "1-0", json: "{bad", error: "unreadable")
        try await dead.park(partition: 1, entryID: "2-0", json: "{}", error: "refused")
        #expect(try await dead.count() == 2)
        let letters = try await dead.list()
        #expect(letters.map(\.entryID) == ["1-0", "2-0"] && letters[0].error == "unreadable" && letters[1].partition == 1)
        struct StillBad: Error {}
        let applied = try await dead.requeue { letter in if letter.entryID == "1-0" { throw StillBad() } }
        #expect(applied == 1)
        #expect(try await dead.list().map(\.entryID) == ["1-0"])
        try await t.cleanUp()
    }

    @Test func theReaderPagesReportsUnreadableEntriesAndKnowsWhatWasLost() async throws {
        let t = try TestLog(partitions: 2)
        let u = try await t.users("rd1", "rd2")
        for n in 0..<5 {
            try await t.log.execute(.sendDirect(to: u["rd2"]!, messageId: "m\(n)", body: "\(n)", clientMsgId: nil), actor: u["rd1"]!)
        }
        let direct = t.log.partitioning.partition(ofRoom: Partitioning.directRoomId(u["rd1"]!, u["rd2"]!))
        _ = try await t.redis.xadd(t.log.keys.stream(direct), fields: [("event", "{not an event")])
        var pages: [LogReader.Page] = []
        try await t.log.reader.forEachPage(partition: direct, count: 2) { pages.append($0) }
        #expect(pages.map(\.entries).reduce(0, +) == (direct == 0 ? 9 : 7))
        #expect(pages.flatMap(\.unreadable).count == 1)
        let head = try await t.log.head()
        let merged = try await t.log.reader.merged(after: .start(partitions: 2), until: head, count: 100)
        #expect(merged.reached == head && merged.events.count == 8 && merged.unreadable.count == 1)
        #expect(try await t.log.reader.merged(after: head, until: head, count: 100).isEmpty)
        // Backwards from the head (the unreadable entry, excluded): newest first.
        let back = try await t.log.reader.page(partition: direct, before: head.entryIDs[direct], count: 3)
        #expect(back.events.compactMap { if case .messageSent(let m) = $0.event.data { m.body } else { nil } } == ["4", "3", "2"])
        #expect(try await !t.log.reader.lostEntries(after: .start(partitions: 2)))
        let oldest = try await t.log.reader.oldest()
        try await t.redis.command(["XDEL", t.log.keys.stream(direct), oldest[direct]])
        #expect(try await t.log.reader.lostEntries(after: .start(partitions: 2)))
        #expect(try await t.log.reader.length() == 8)
        try await t.cleanUp()
    }

    @Test func theJoinedRoomsComeWithThePositionTheyHoldAt() async throws {
        let t = try TestLog(partitions: 2)
        let u = try await t.users("jr1", "jr2")
        try await t.log.execute(.createGroup(roomId: "jr-room", name: "r", invite: [u["jr2"]!]), actor: u["jr1"]!)
        let before = try await t.log.joinedRooms(of: u["jr2"]!)
        var head = try await t.log.head()
        #expect(before.rooms.isEmpty && before.at == head)
        try await t.log.execute(.join(roomId: "jr-room"), actor: u["jr2"]!)
        let after = try await t.log.joinedRooms(of: u["jr2"]!)
        head = try await t.log.head()
        #expect(after.rooms == ["jr-room"] && after.at == head)
        try await t.cleanUp()
    }

    @Test func typingSignalsReachEveryInstanceAndTheSubscriberStopsWithItsTask() async throws {
        let t = try TestLog()
        let got = NIOLockedValueBox<[String]>([])
        let signals = t.log.signals(logger: Logger(label: "test")) { room, user in got.withLockedValue { $0.append("\(room) \(user)") } }
        let listening = Task { try await signals.run() }
        _ = try await eventually {
            try await signals.typing(roomId: "r1", userId: "u1")
            if got.withLockedValue({ $0.isEmpty }) { throw EventLog.Failure(description: "nothing received yet") }
            return true
        }
        #expect(got.withLockedValue { $0.allSatisfy { $0 == "r1 u1" } })
        listening.cancel()
        try await listening.value  // returns: the subscriber thread ended
        try await t.cleanUp()
    }
}
