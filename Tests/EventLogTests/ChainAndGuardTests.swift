import Events
import Foundation
import TestSupport
import Testing

@testable import EventLog

@Suite("Hash chain, guard rebuild, positions and the live tail")
struct ChainAndGuardTests {
    /// A small workload with every kind of event, across partitions.
    func workload(_ t: TestLog) async throws -> [String: String] {
        let u = try await t.users("ada", "bea", "cyd")
        let (ada, bea, cy) = (u["ada"]!, u["bea"]!, u["cyd"]!)
        _ = try await t.log.execute(.createGroup(roomId: "club", name: "Club", invite: [bea, cy]), actor: ada)
        _ = try await t.log.execute(.join(roomId: "club"), actor: bea)
        _ = try await t.log.execute(.decline(roomId: "club"), actor: cy)
        _ = try await t.log.execute(.setRole(roomId: "club", userId: bea, role: .admin), actor: ada)
        _ = try await t.log.execute(.send(roomId: "club", messageId: "c1", body: "hi", clientMsgId: "k1", replyTo: nil), actor: bea)
        _ = try await t.log.execute(.send(roomId: "club", messageId: "c2", body: "yo", clientMsgId: nil, replyTo: "c1"), actor: ada)
        _ = try await t.log.execute(.edit(roomId: "club", messageId: "c1", body: "hi!"), actor: bea)
        _ = try await t.log.execute(.delete(roomId: "club", messageId: "c2"), actor: bea)
        _ = try await t.log.execute(.rename(roomId: "club", name: "Club 2"), actor: bea)
        _ = try await t.log.execute(.markRead(roomId: "club", seq: 2), actor: ada)
        _ = try await t.log.execute(.sendDirect(to: cy, messageId: "d1", body: "psst", clientMsgId: "k2"), actor: ada)
        _ = try await t.log.execute(.leave(roomId: "club"), actor: ada)
        for n in 0..<5 {
            _ = try await t.log.execute(.createGroup(roomId: "room\(n)", name: "R\(n)", invite: []), actor: cy)
            _ = try await t.log.execute(
                .send(roomId: "room\(n)", messageId: "r\(n)", body: "\(n)", clientMsgId: nil, replyTo: nil), actor: cy)
        }
        return u
    }

    @Test func theChainOfEveryPartitionChecksOut() async throws {
        let t = try TestLog(partitions: 3)
        _ = try await workload(t)
        var total = 0
        for p in 0..<3 {
            let report = try await t.log.verifyChain(partition: p)
            #expect(report.isIntact, "partition \(p): \(String(describing: report.firstBreak))")
            total += report.checked
        }
        #expect(total == (try await t.all()).count)
        try await t.cleanUp()
    }

    /// Copies partition 0 of `t` into a new namespace, passing each stored entry through `edit`.
    func copy(_ t: TestLog, _ edit: ([StreamEntry]) -> [StreamEntry]) async throws -> EventLog {
        let source = try await t.redis.xrange(t.log.keys.stream(0))
        let copy = EventLog(redis: t.redis, partitions: 1, namespace: t.log.keys.namespace + TestStores.unique("-copy"))
        for entry in edit(source) { _ = try await t.redis.xadd(copy.keys.stream(0), id: entry.id, fields: entry.fields) }
        let head = try await t.redis.command(["GET", t.log.guardKeys(0).head])
        try await t.redis.command(["SET", copy.guardKeys(0).head, head.string ?? ""])
        return copy
    }

    @Test func auditChainNamesTheFirstAlteredAndTheFirstRemovedEntry() async throws {
        let t = try TestLog()
        _ = try await workload(t)
        let entries = try await t.redis.xrange(t.log.keys.stream(0))
        let untouched = try await copy(t) { $0 }
        #expect(try await untouched.verifyChain(partition: 0).isIntact)

        // Altered: a message body changed after the fact.
        let target = try #require(entries.firstIndex { $0["event"]?.contains("\"body\":\"hi\"") == true })
        let altered = try await copy(t) { entries in
            var entries = entries
            entries[target].fields = [
                ("event", entries[target]["event"]!.replacingOccurrences(of: "\"body\":\"hi\"", with: "\"body\":\"bye\""))
            ]
            return entries
        }
        let alteredReport = try await altered.verifyChain(partition: 0)
        #expect(alteredReport.firstBreak?.entryID == entries[target].id)

        // Removed: one entry deleted from the middle; the break shows at the entry after it.
        let removedIndex = entries.count / 2
        let removed = try await copy(t) { entries in
            var entries = entries
            entries.remove(at: removedIndex)
            return entries
        }
        #expect(try await removed.verifyChain(partition: 0).firstBreak?.entryID == entries[removedIndex + 1].id)

        // Removed at the end: the stored chain head no longer matches.
        let truncated = try await copy(t) { Array($0.dropLast()) }
        #expect(try await truncated.verifyChain(partition: 0).firstBreak?.entryID == "end")
        try await t.cleanUp()
    }

    @Test func guardStateRebuiltFromTheLogEqualsTheLiveOne() async throws {
        let t = try TestLog(partitions: 2)
        let ids = try await workload(t)
        // bea owns the club once ada has left; c2 is deleted.
        let owner = try #require(ids["bea"])
        for command: Command in [
            .react(roomId: "club", messageId: "c1", emoji: "👍"), .react(roomId: "club", messageId: "c1", emoji: "🎉"),
            .pin(roomId: "club", messageId: "c1"), .unreact(roomId: "club", messageId: "c1", emoji: "🎉"),
            .send(roomId: "club", messageId: "c5", body: "x", clientMsgId: nil, replyTo: nil), .pin(roomId: "club", messageId: "c5"),
            .react(roomId: "club", messageId: "c5", emoji: "👀"), .unreact(roomId: "club", messageId: "c5", emoji: "👀"),
            .react(roomId: "club", messageId: "c5", emoji: "🚀"), .delete(roomId: "club", messageId: "c5"),
        ] {
            #expect(try await t.log.execute(command, actor: owner).events.count > 0, "\(command)")
        }
        let live = try await t.log.guardSnapshot()
        #expect(live.count > 10)
        #expect(live.keys.contains { $0.contains(":rx:club") } && live.keys.contains { $0.contains(":pins:club") })
        let folded = try await t.log.rebuildGuards()
        #expect(folded == (try await t.all()).count)
        let rebuilt = try await t.log.guardSnapshot()
        #expect(rebuilt == live)
        // In small batches: a reaction whose earlier state came in an earlier batch folds onto it, and one taken back
        // earlier in the same batch is not read back from Redis (where the batch has not written yet).
        for batch in 2...5 {
            _ = try await t.log.rebuildGuards(batch: batch)
            #expect(try await t.log.guardSnapshot() == live, "in batches of \(batch)")
        }
        // And the rules still hold on the rebuilt state: a duplicate client id is still caught.
        let users = try await t.all().compactMap { e -> UserRegistered? in
            if case .userRegistered(let u) = e.event.data { return u } else { return nil }
        }
        let bea = try #require(users.first { $0.username == "bea" }).userId
        let again = try await t.log.execute(
            .send(roomId: "club", messageId: "new", body: "hi", clientMsgId: "k1", replyTo: nil), actor: bea)
        #expect(again.duplicate)
        try await t.cleanUp()
    }

    @Test func positionsTailAndStoredV1EventsReadBack() async throws {
        let t = try TestLog(partitions: 2)
        let u = try await t.users("tia", "tom")
        let start = try await t.log.head()
        #expect(LogPosition(token: start.description, partitions: 2) == start)
        #expect(LogPosition(token: "garbage", partitions: 2) == nil)
        #expect(LogPosition(token: "1-0", partitions: 2) == nil)

        async let woken = t.tailEveryGroup(after: start, blockMs: 5000)
        try await Task.sleep(for: .milliseconds(200))
        let sent = try await t.log.execute(.sendDirect(to: u["tom"]!, messageId: "m", body: "live", clientMsgId: nil), actor: u["tia"]!)
        let tailed = try await woken
        #expect(tailed.events.map(\.entryID) == sent.events.map(\.entryID))
        var position = start
        for event in tailed.events { position.advance(past: event) }
        #expect(tailed.reached == position)
        #expect(try await t.log.read(after: position).isEmpty)
        #expect(try await t.tailEveryGroup(after: position, blockMs: 50).events.isEmpty)

        // A v1 user.registered written before displayName existed is read as v2.
        let v1 =
            #"{"actorId":"old","at":"2024-05-06T07:08:09.010Z","data":{"passwordHash":"h","userId":"old","username":"oldtimer"},"id":"e-old","type":"user.registered","v":1,"prevHash":"x","hash":"y"}"#
        _ = try await t.redis.xadd(t.log.keys.stream(0), fields: [("event", v1)])
        let read = try await t.log.read(partition: 0, after: position.entryIDs[0])
        #expect(
            read.last?.event.data
                == .userRegistered(UserRegistered(userId: "old", username: "oldtimer", displayName: "oldtimer", passwordHash: "h")))
        try await t.cleanUp()
    }
}
