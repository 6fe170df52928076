import Events
import Foundation
import Logging
import Projections
import TestSupport
import Testing

@testable import EventLog

/// The log outgrows Redis: entries are copied to the archive and trimmed from the streams,
/// and every reader still sees one log.
@Suite("The archive and trimming")
struct ArchiveTests {
    /// What each reader gives for the log now: compared before and after the trim.
    struct Readings: Equatable {
        var export: String
        var audit: String
        var merged: [String]
        var since: [[String]]
        var backwards: [String]
        var length: Int
    }

    func read(_ f: ReplayFixture, sinceAt indices: [Int]) async throws -> Readings {
        // To a file: megabytes through a pipe the test reads only at the end would fill it.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(f.schema)-export.jsonl").path
        let exported = try await f.replay(["export", "--out", file])
        #expect(exported.status == 0, "\(exported.stderr)")
        let export = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: file)
        let audit = try await f.replay(["audit", "chain"])
        #expect(audit.status == 0 && audit.stdout.contains("audit chain: OK"), "\(audit.stdout)\(audit.stderr)")
        let all = try await f.log.read(after: .start(partitions: f.partitions), count: 100_000)
        var since: [[String]] = []
        for index in indices {
            // A client that last saw event `index` (the position just after it), as the hub replays to it.
            var position = LogPosition.start(partitions: f.partitions)
            for event in all.prefix(index + 1) { position.advance(past: event) }
            since.append(try await f.log.read(after: position, count: 100_000).map(\.entryID))
        }
        let club = f.log.partitioning.partition(ofRoom: "club")
        let head = try await f.log.head().entryIDs[club]
        let backwards = try await f.log.reader.page(partition: club, before: head, inclusive: true, count: 300).events.map(\.entryID)
        return Readings(
            export: export, audit: audit.stdout, merged: all.map(\.entryID), since: since, backwards: backwards,
            length: try await f.log.reader.length())
    }

    @Test func fiveThousandMessagesTrimmedToTheLastHundredReadTheSameEverywhere() async throws {
        let f = try await ReplayFixture(partitions: 2)
        let ids = try await f.log.scriptedChat()
        let early = Command.send(roomId: "club", messageId: "early", body: "sent early", clientMsgId: "early-k", replyTo: nil)
        try await f.log.execute(early, actor: ids["ada"]!)
        try await f.sendMany(5000, ids: ids, tasks: 16)
        try await f.project()
        let before = try await read(f, sinceAt: [3, 2500, 5000])
        #expect(before.since[2].count > 10)

        // Archive everything, then trim each stream to its last 100 entries.
        var options = LogArchiver.Options()
        options.batch = 700
        let archiver = LogArchiver(log: f.log, archive: f.archive, options: options, consumer: "test", logger: Logger(label: "test"))
        for partition in 0..<f.partitions {
            while try await archiver.archiveOnce(partition: partition) > 0 {}
        }
        #expect(try await f.archive.count(partition: 0, before: nil) + f.archive.count(partition: 1, before: nil) == before.length)
        let club = f.log.partitioning.partition(ofRoom: "club")
        let stream = f.log.keys.stream(club)
        let entries = try await f.redis.xrange(stream)
        // Not past what a consumer group still holds: a group that never read blocks the trim.
        try await f.redis.command(["XGROUP", "CREATE", stream, "late", "0"])
        #expect(try await archiver.trim(partition: club, before: entries[entries.count - 100].id) == 0)
        try await f.redis.command(["XGROUP", "DESTROY", stream, "late"])
        #expect(try await archiver.trim(partition: club, before: entries[entries.count - 100].id) == entries.count - 100)
        #expect(try await f.redis.command(["XLEN", stream]).int == 100)

        // Every reader gives what it gave before, across the seam between the archive and the stream.
        let after = try await read(f, sinceAt: [3, 2500, 5000])
        #expect(after.merged == before.merged)
        #expect(after.since == before.since)
        #expect(after.backwards == before.backwards)
        #expect(after.length == before.length)
        #expect(after.audit == before.audit)
        #expect(after.export == before.export && before.export.split(separator: "\n").count == before.length)
        #expect(try await f.log.reader.lostEntries(after: .start(partitions: f.partitions)) == false)
        #expect(try await f.log.verifyChain(partition: club).isIntact)
        // A send repeated after its entry was trimmed is still a repeat: the first message, read from the archive.
        let repeated = try await f.log.execute(
            .send(roomId: "club", messageId: "early-again", body: "sent early", clientMsgId: "early-k", replyTo: nil), actor: ids["ada"]!)
        #expect(repeated.duplicate)
        if case .messageSent(let sent) = repeated.events.first?.event.data { #expect(sent.messageId == "early") }
        #expect(try await f.redis.command(["XLEN", stream]).int == 100)

        // A rebuild (beside the live read models, whose lease the runners just left) reads the archive, then the stream:
        // verify finds the read models equal to the log.
        let rebuilt = try await f.replay(["rebuild", "--shadow"])
        #expect(rebuilt.status == 0, "\(rebuilt.stdout)\(rebuilt.stderr)")
        let verified = try await f.replay(["verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(try await f.history.message(id: "bulk-7")?.body == "message 7")

        // A read model that starts from nothing (a new projector) is fed the archive before the stream.
        try await f.messages.reset()
        try await f.project()
        #expect(try await f.history.message(id: "bulk-7")?.body == "message 7")
        #expect(try await f.history.message(id: "bulk-4999")?.body == "message 4999")
        // So is the search read model, the projector a server adds to a log whose beginning is only in the archive now.
        try await f.search.reset()
        try await f.project()
        let search = SearchReadModel(postgres: f.postgres, schema: f.schema)
        #expect(try await search.search(try #require(SearchQuery("early")), userId: ids["ada"]!).hits.map(\.messageId) == ["early"])
        #expect(
            try await search.search(try #require(SearchQuery(#""message 4999""#)), userId: ids["ada"]!).hits.map(\.messageId) == [
                "bulk-4999"
            ])
        let again = try await f.replay(["verify"])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        try await f.cleanUp()
    }

    /// Before, every message's record (`senderId|deleted`) stayed in Redis for ever: about 86 bytes per message, which
    /// grew Redis from 59 to 139 MB over a million messages with the streams trimmed.
    @Test func oldMessagesRecordsLeaveRedisAndTheRulesStillHoldForThem() async throws {
        let f = try await ReplayFixture(partitions: 1)
        let ids = try await f.log.scriptedChat()
        let (ada, bea) = (ids["ada"]!, ids["bea"]!)
        try await f.log.execute(
            .send(roomId: "club", messageId: "reply-0", body: "in c1's thread", clientMsgId: nil, replyTo: nil, threadRootId: "c1"),
            actor: bea)
        try await f.sendMany(300, ids: ids, tasks: 4)  // bulk-i: ada's when i is even, bea's when odd
        let live = f.startLive()
        try await f.waitUntilProjected()
        let archiver = LogArchiver(log: f.log, archive: f.archive, consumer: "test", logger: Logger(label: "test"))
        let keys = f.log.keys.guards(0)
        func archiveAndTrim(keeping kept: Int) async throws {
            while try await archiver.archiveOnce(partition: 0) > 0 {}
            let entries = try await f.redis.xrange(f.log.keys.stream(0))
            let bound = entries[entries.count - kept].id
            // The live projectors acknowledge what they applied a moment later: a group behind the bound holds the trim.
            _ = try await eventually(seconds: 30) {
                for (group, acknowledged) in try await archiver.acknowledgedByGroups(f.log.keys.stream(0))
                where StreamID.less(acknowledged, bound) {
                    throw ProjectionError("\(group) acknowledged only up to \(acknowledged)")
                }
                return true
            }
            try await archiver.trim(partition: 0, before: bound)
        }
        func records() async throws -> Int { Int(try await f.redis.command(["HLEN", keys.messages("club")]).int ?? -1) }
        // nil: appended. Any other failure than a refusal fails the test.
        func refusal(_ command: Command, by actor: String) async throws -> RuleError.Code? {
            do {
                try await f.log.execute(command, actor: actor)
                return nil
            } catch let error as RuleError { return error.code }
        }
        func inRedis(_ id: String) async throws -> Bool { try await f.redis.command(["HEXISTS", keys.messages("club"), id]).int == 1 }
        #expect(try await records() == 304)
        try await archiveAndTrim(keeping: 50)
        #expect(try await records() <= 50)
        // A reply in a thread is still one once its record left Redis: it cannot be a thread's root.
        #expect(try await !inRedis("reply-0"))
        #expect(
            try await refusal(
                .send(roomId: "club", messageId: "x", body: "x", clientMsgId: nil, replyTo: nil, threadRootId: "reply-0"), by: ada)
                == .conflict)
        #expect(
            try await refusal(.send(roomId: "club", messageId: "y", body: "y", clientMsgId: nil, replyTo: nil, threadRootId: "c2"), by: ada)
                == nil)
        for id in ["bulk-0", "bulk-2", "bulk-4", "bulk-6", "bulk-8"] { #expect(try await !inRedis(id), "\(id) is still in Redis") }

        // Trimmed messages are still the rules' business: only the sender edits, an admin deletes, a reply finds them.
        #expect(try await refusal(.edit(roomId: "club", messageId: "bulk-0", body: "not yours"), by: bea) == .forbidden)
        #expect(try await refusal(.edit(roomId: "club", messageId: "bulk-0", body: "edited late"), by: ada) == nil)
        #expect(try await refusal(.edit(roomId: "club", messageId: "never-sent", body: "?"), by: ada) == .notFound)
        #expect(
            try await refusal(.send(roomId: "club", messageId: "re-4", body: "late reply", clientMsgId: nil, replyTo: "bulk-4"), by: bea)
                == nil
        )
        // Ten deletes of one old message at once append one deletion.
        let deletions = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<10 {
                group.addTask { try await f.log.execute(.delete(roomId: "club", messageId: "bulk-2"), actor: bea).events.count }
            }
            return try await group.reduce(0, +)
        }
        #expect(deletions == 1)
        #expect(try await refusal(.edit(roomId: "club", messageId: "bulk-2", body: "after deletion"), by: ada) == .conflict)
        #expect(try await f.redis.command(["HGET", keys.messages("club"), "bulk-2"]).string == "\(ada)|1")

        // Once the deletion is archived and trimmed too, the record leaves Redis again, deleted.
        try await f.sendMany(60, ids: ids, tasks: 2, prefix: "later")
        try await f.waitUntilProjected()
        try await archiveAndTrim(keeping: 50)
        #expect(try await f.redis.command(["HEXISTS", keys.messages("club"), "bulk-2"]).int == 0)
        #expect(try await records() <= 50)
        #expect(try await refusal(.edit(roomId: "club", messageId: "bulk-2", body: "after deletion"), by: ada) == .conflict)

        // The guard state rebuilt from the log (archive, then stream) leaves the evicted records in the archive.
        try await f.log.rebuildGuards(batch: 100)
        #expect(try await records() <= 50)
        for id in ["bulk-2", "bulk-6"] { #expect(try await !inRedis(id), "\(id) is back in Redis after the rebuild") }
        #expect(try await refusal(.edit(roomId: "club", messageId: "bulk-2", body: "after deletion"), by: ada) == .conflict)
        #expect(try await refusal(.edit(roomId: "club", messageId: "bulk-6", body: "not yours"), by: bea) == .forbidden)
        #expect(try await refusal(.edit(roomId: "club", messageId: "bulk-6", body: "edited after the rebuild"), by: ada) == nil)

        // A delete decided on a record read from the archive, whose message meanwhile was deleted, archived and evicted
        // again (a process frozen that long): absent from Redis as when it was read, but refused, not a second deletion.
        let command = Command.delete(roomId: "club", messageId: "bulk-8")
        let stale = try await f.log.loadState(for: command, actor: bea, keys: keys)
        #expect(stale.coldMessages["bulk-8"] != nil)
        try await f.log.execute(command, actor: ada)
        try await f.sendMany(60, ids: ids, tasks: 2, prefix: "latest")
        try await f.waitUntilProjected()
        try await archiveAndTrim(keeping: 50)
        #expect(try await f.redis.command(["HEXISTS", keys.messages("club"), "bulk-8"]).int == 0)
        let decision = try Rules.decide(command, stale, DecisionContext(actorId: bea, now: Date(), newID: { "unused" }))
        #expect(decision.events.count == 1)
        let request = try AppendRequest(decision: decision, state: stale, keys: keys, dedupe: f.log.dedupe)
        let reply = try await appendScript.run(f.redis, keys: request.keys, arguments: request.arguments)
        if case .conflict = try request.parse(reply, partition: 0) {
        } else {
            Issue.record("a delete decided on an evicted record was appended: \(reply)")
        }

        try await f.waitUntilProjected()
        #expect(try await f.history.message(id: "bulk-0")?.body == "edited late")
        #expect(try await f.history.message(id: "bulk-2")?.deleted == true)
        #expect(try await f.history.message(id: "re-4")?.replyTo == "bulk-4")
        live.cancel()
        _ = try? await live.value
        try await f.cleanUp()
    }

    @Test func exportWritesIntoThePathItIsGivenNeverReplacingIt() async throws {
        // On 0bdf1fa, `--out /dev/null` run as root replaced the device with a regular file; a symbolic link the same way.
        let f = try await ReplayFixture(partitions: 1)
        _ = try await f.log.scriptedChat()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(f.schema)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let target = directory.appendingPathComponent("target.jsonl").path
        let link = directory.appendingPathComponent("link.jsonl").path
        #expect(FileManager.default.createFile(atPath: target, contents: Data("old\n".utf8)))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let exported = try await f.replay(["export", "--out", link])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == target)
        let written = try String(contentsOfFile: target, encoding: .utf8)
        #expect(!written.hasPrefix("old") && written.contains("\"entryId\""))
        try FileManager.default.removeItem(at: directory)
        try await f.cleanUp()
    }

    @Test func everyProcessReadsTheArchiveTheLogWasTrimmedInto() async throws {
        let f = try await ReplayFixture(partitions: 1)
        try await f.log.checkArchive(claim: true)
        // The same schema: fine; another one, or none, would read the log without its trimmed entries.
        try await f.log.checkArchive(claim: true)
        let elsewhere = EventLog(
            redis: f.redis, partitions: 1, namespace: f.schema, archive: LogArchive(postgres: f.postgres, schema: "other_schema"))
        await #expect(throws: EventLog.Failure.self) { try await elsewhere.checkArchive(claim: true) }
        let without = EventLog(redis: f.redis, partitions: 1, namespace: f.schema)
        await #expect(throws: EventLog.Failure.self) { try await without.checkArchive(claim: false) }
        let off = try await f.replay(["verify"], environment: ["PARLEY_ARCHIVE": "off"])
        #expect(off.status == 1 && off.stderr.contains("log_archive"), "\(off.stderr)")
        try await f.cleanUp()
    }
}
