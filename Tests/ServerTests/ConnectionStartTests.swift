import EventLog
import Events
import Foundation
import TestSupport
import Testing

@testable import Server

/// Where a reconnecting client starts, against the real Redis: the replay after `since`
/// judged by the membership the user had at each event, for removals logged before they
/// recorded the removed user's previous state.
@Suite("ConnectionStart against real Redis")
struct ConnectionStartTests {
    /// ann's club with bob joined and one message; returns the log, the ids and the position after it.
    static func club() async throws -> (log: EventLog, redis: RedisClient, ann: String, bob: String, since: LogPosition) {
        let redis = try TestStores.redis()
        let log = EventLog(redis: redis, partitions: 2, namespace: TestStores.unique("tstart"))
        let (ann, bob) = ("u-ann-\(newID().prefix(6))", "u-bob-\(newID().prefix(6))")
        for (id, name) in [(ann, "ann"), (bob, "bob")] {
            try await log.execute(.register(userId: id, username: name + id.suffix(6), displayName: nil, passwordHash: "h"), actor: id)
        }
        try await log.execute(.createGroup(roomId: "club", name: "club", invite: [bob]), actor: ann)
        try await log.execute(.join(roomId: "club"), actor: bob)
        try await log.execute(.send(roomId: "club", messageId: "m1", body: "one", clientMsgId: nil, replyTo: nil), actor: ann)
        try await log.execute(.send(roomId: "club", messageId: "m1b", body: "one more", clientMsgId: nil, replyTo: nil), actor: ann)
        return (log, redis, ann, bob, try await log.head())
    }

    /// What bob's frames say, in order: message bodies, else event types.
    static func labels(_ frames: [String]) throws -> [String] {
        try frames.map { frame in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(frame.utf8)) as? [String: Any])
            let event = try #require(object["event"] as? [String: Any])
            return ((event["data"] as? [String: Any])?["body"] as? String) ?? (event["type"] as? String ?? "?")
        }
    }

    /// A removal of bob as logged before removals carried `previousState`, written past the
    /// rules, with the guard state changed as its append would have.
    static func legacyRemoval(_ log: EventLog, _ redis: RedisClient, ann: String, bob: String) async throws {
        let event = Event(id: newID(), at: Date(), actorId: ann, roomId: "club", data: .memberRemoved(MemberChange(userId: bob)))
        let partition = log.partitioning.partition(ofRoom: "club")
        _ = try await redis.xadd(log.keys.stream(partition), fields: [("event", try EventCodec.encode(event))])
        try await redis.command(["SREM", log.keys.guards(partition).joined(bob), "club"])
    }

    /// A `since` from long ago costs a bounded read: past `maxScan` entries nothing is replayed, the client is told to
    /// refetch, and the connection starts where a new one would, with the rooms the user is in now.
    @Test func aSinceFurtherBackThanTheScanBoundIsNotReplayedButTheConnectionStarts() async throws {
        let (log, _, ann, bob, since) = try await Self.club()
        for n in 0..<30 {
            try await log.execute(.send(roomId: "club", messageId: "far\(n)", body: "far \(n)", clientMsgId: nil, replyTo: nil), actor: ann)
        }
        let start = try await log.head()
        var begin = ConnectionStart(log: log, userId: bob, maxReplay: 1000)
        begin.pageSize = 5
        let within = try await begin.run(start: start, since: since)
        #expect(within.frames.count == 30 && within.recovered)
        begin.maxScan = 20
        let beyond = try await begin.run(start: start, since: since)
        #expect(beyond.frames.isEmpty && !beyond.recovered)
        #expect(beyond.viewer.rooms == within.viewer.rooms && beyond.viewer.rooms.contains("club"))
    }

    /// A client that saw events the log has since lost (Redis came back from an older snapshot) is told it may have
    /// missed something, even once newer events are in the log.
    @Test func aSinceNamingAnEntryTheLogLostIsNotRecoveredEvenAfterNewAppends() async throws {
        let (log, redis, ann, bob, since) = try await Self.club()
        let partition = log.partitioning.partition(ofRoom: "club")
        let stream = log.keys.stream(partition)
        let entries = try await redis.xrange(stream)
        // The restore: the stream without its last entry, which bob had seen.
        try await redis.command("DEL", stream)
        for entry in entries.dropLast() { _ = try await redis.command(["XADD", stream, entry.id, "event", entry["event"] ?? ""]) }
        try await log.execute(.send(roomId: "club", messageId: "m9", body: "after", clientMsgId: nil, replyTo: nil), actor: ann)
        let begin = ConnectionStart(log: log, userId: bob, maxReplay: 100)
        #expect(!(try await begin.run(start: try await log.head(), since: since)).recovered)
    }

    @Test func anOldRemovalIsResolvedFromTheUsersEarlierMembershipEvents() async throws {
        let (log, redis, ann, bob, since) = try await Self.club()
        try await log.execute(.send(roomId: "club", messageId: "m2", body: "two", clientMsgId: nil, replyTo: nil), actor: ann)
        try await Self.legacyRemoval(log, redis, ann: ann, bob: bob)
        try await log.execute(.send(roomId: "club", messageId: "m3", body: "three", clientMsgId: nil, replyTo: nil), actor: ann)
        let start = try await log.head()

        var begin = ConnectionStart(log: log, userId: bob, maxReplay: 100)
        let result = try await begin.run(start: start, since: since)
        #expect(try Self.labels(result.frames) == ["two", "member.removed"] && result.recovered && result.viewer.rooms.isEmpty)
        // Not found within the look-back (the two messages before since): nothing that may not be
        // his, and he is told to refetch.
        begin.lookBack = 2
        begin.pageSize = 1
        let short = try await begin.run(start: start, since: since)
        #expect(try Self.labels(short.frames) == ["member.removed"])
        #expect(!short.recovered)
        // Without since: only where he stands now.
        let fresh = try await ConnectionStart(log: log, userId: ann, maxReplay: 100).run(start: start, since: nil)
        #expect(fresh.frames.isEmpty && fresh.recovered && fresh.viewer.rooms == ["club"])
        try await redis.deleteKeys(matching: log.keys.everything)
        log.shutdown()
        await redis.shutdown()
    }

    @Test func aJoinWhileTheConnectionIsSetUpCountsFromTheStartPosition() async throws {
        let (log, redis, ann, bob, _) = try await Self.club()
        try await log.execute(.createGroup(roomId: "later", name: "later", invite: [bob]), actor: ann)
        let start = try await log.head()
        // bob joins after the hub's position was taken, before his rooms are read.
        try await log.execute(.join(roomId: "later"), actor: bob)
        let result = try await ConnectionStart(log: log, userId: bob, maxReplay: 100).run(start: start, since: nil)
        #expect(result.viewer.rooms == ["club"])  // "later" comes with the held member.joined
        try await redis.deleteKeys(matching: log.keys.everything)
        log.shutdown()
        await redis.shutdown()
    }
}
