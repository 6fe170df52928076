import EventLog
import Events
import Foundation
import Logging
import NIOConcurrencyHelpers
import TestSupport
import Testing

@testable import Projections

@Suite("Projector faults: a dead consumer, poison events, rebuilds beside live work")
struct ProjectionFaultTests {
    func sendMany(_ f: ProjectionFixture, _ ids: [String: String], count: Int, prefix: String) async throws {
        for n in 0..<count {
            try await f.log.execute(
                .send(roomId: "club", messageId: "\(prefix)\(n)", body: "message \(n)", clientMsgId: nil, replyTo: nil),
                actor: n.isMultiple(of: 2) ? ids["ada"]! : ids["bea"]!)
        }
    }

    /// A read model that lost its newest writes (its store rolled back, restored, or stopped uncleanly) while the log and
    /// the consumer group kept going: before, the group had acknowledged those events and never handed them out again,
    /// and the messages stayed missing for good.
    @Test func aReadModelThatLostItsNewestWritesGetsThemBackAtTheNextTakeover() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        try await sendMany(f, ids, count: 30, prefix: "m")
        try await f.project()
        let whole = try await f.snapshot()
        let events = try await f.log.read(partition: 0, count: 10_000)
        // MongoDB goes back to where it was before the last 12 messages: their documents and the checkpoint with them.
        let cut = try #require(
            events.firstIndex {
                if case .messageSent(let sent) = $0.event.data { return sent.messageId == "m18" }
                return false
            })
        let documents = try await f.messages.documents()
        for n in 18..<30 { _ = try await documents.deleteMany(["_id": .string("m\(n)")]) }
        let checkpoints = try await f.messages.checkpointCollection()
        try await checkpoints.updateOne(
            filter: ["_id": "messages:0"], update: ["$set": ["position": .string(events[cut - 1].entryID)]])
        #expect(try await f.messages.checkpoint(partition: 0) == events[cut - 1].entryID)

        // The next holder notices and reads those events again.
        let live = f.startLive(consumer: "after-the-loss")
        try await f.waitUntilProjected()
        live.cancel()
        _ = try? await live.value
        let again = try await f.snapshot()
        #expect(again.documents.count == whole.documents.count)
        #expect(again.documents.map { $0["_id"]?.stringValue } == whole.documents.map { $0["_id"]?.stringValue })
        #expect(try await f.history.message(id: "m29")?.body == "message 29")
        try await f.cleanUp()
    }

    @Test func aConsumerKilledMidBatchLeavesNoLossAndNoDuplicate() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        try await sendMany(f, ids, count: 40, prefix: "x")
        let stream = f.log.keys.stream(0)
        // A consumer reads a batch, applies half of it, and dies holding the lease.
        for projector in [f.metadata.name, f.messages.name] {
            try await f.redis.xgroupCreate(stream, group: projector, startID: "0")
        }
        for projector in [f.metadata, f.messages] as [any Projector] {
            let taken = try await f.redis.xreadgroup(group: projector.name, consumer: "dead", [(stream, ">")], count: 30)
            let events = try taken[0].entries.map { try EventLog.decode($0, partition: 0) }
            try await projector.apply(Array(events.prefix(15)), partition: 0)
            try await f.redis.command("SET", "\(f.log.keys.namespace):lease:\(projector.name):0", "dead", "PX", "300")
        }
        try await sendMany(f, ids, count: 10, prefix: "y")

        // Another consumer waits out the lease, claims the dead one's entries and goes on.
        let runners = [
            f.runner(f.metadata, consumer: "alive", lease: .milliseconds(300)),
            f.runner(f.messages, consumer: "alive", lease: .milliseconds(300)),
        ]
        let task = Task {
            try await withThrowingTaskGroup(of: Void.self) { g in
                for r in runners { g.addTask { try await r.run() } }
                try await g.waitForAll()
            }
        }
        try await f.waitUntilCaughtUp(f.metadata)
        try await f.waitUntilCaughtUp(f.messages)
        // Acknowledged after applying: give the last XACK its moment, then every entry,
        // the dead consumer's included, must be acknowledged.
        let acknowledged = try? await eventually(seconds: 10) {
            let pending = try await f.redis.xinfoGroups(stream).map { $0["pending"]?.int ?? -1 }
            guard pending.allSatisfy({ $0 == 0 }) else { throw ProjectionError("pending \(pending)") }
            return true
        }
        task.cancel()
        _ = try? await task.value
        #expect(acknowledged == true)

        let sent = try await f.log.read(partition: 0, count: 10_000).filter { $0.event.type == .messageSent }
        let documents = try await f.messages.documents().find(["roomId": "club"])
        #expect(documents.count == sent.filter { $0.event.roomId == "club" }.count)
        #expect(Set(documents.compactMap { $0["seq"]?.int64Value }).count == documents.count)
        #expect(try await f.read.room(id: "club")?.lastSeq == 53)
        for group in try await f.redis.xinfoGroups(stream) {
            #expect(group["pending"]?.int == 0, "\(group)")  // everything acknowledged
        }
        try await f.cleanUp()
    }

    /// Redis restored from an older snapshot: the read models hold events the log no longer has, and the rooms' numbers
    /// went back with it. The projectors must notice and stop, not project new events over the old ones.
    @Test func aLogThatLostItsNewestEntriesIsNoticedAndNothingIsProjectedOverThem() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        try await sendMany(f, ids, count: 10, prefix: "kept")
        try await f.project()
        // The restore: the stream as it was five entries ago (its consumer groups are gone with it).
        let stream = f.log.keys.stream(0)
        let entries = try await f.redis.xrange(stream)
        try await f.redis.command("DEL", stream)
        for entry in entries.dropLast(5) {
            _ = try await f.redis.command(["XADD", stream, entry.id, "event", entry["event"] ?? ""])
        }
        let seqBefore = try #require(try await f.read.room(id: "club")?.lastSeq)
        let live = f.startLive()
        _ = try await eventually(seconds: 30) {
            let lost = Set(f.lag.lostTail.map(\.projector))
            guard lost == [f.metadata.name, f.messages.name, f.search.name] else { throw ProjectionError("lost tail reported for \(lost)") }
            return lost
        }
        #expect(f.lag.lostTail.allSatisfy { $0.logEnds == entries.dropLast(5).last?.id && $0.applied == entries.last?.id })
        // Appends to the partition are refused meanwhile: they would reuse the lost messages' numbers.
        let refused = await #expect(throws: EventLog.LostEntries.self) {
            try await f.log.execute(
                .send(roomId: "club", messageId: "after-the-loss", body: "new", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        }
        #expect(refused?.partition == 0 && refused?.detail.contains("messages") == true, "\(String(describing: refused))")
        #expect(try await f.redis.xrange(stream).count == entries.count - 5)
        try await Task.sleep(for: .seconds(2))
        #expect(try await f.history.message(id: "after-the-loss") == nil)
        #expect(try await f.read.room(id: "club")?.lastSeq == seqBefore)
        live.cancel()
        _ = try? await live.value
        try await f.cleanUp()
    }

    /// The same loss under a steady stream of appends (a failover to a replica that was behind, with no quiet second):
    /// the check when the log went quiet came too late, new entries became the checkpoint, and the loss was never seen.
    @Test func aLogThatLostEntriesUnderSteadyAppendsIsNoticedBeforeTheNextBatch() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        try await sendMany(f, ids, count: 10, prefix: "kept")
        // The live runners are past their takeover and reading when the loss happens, with the server's block of 1 s
        // (longer here: never a quiet read while appends come every 20 ms).
        var slowBlock = ProjectorRunner.Options()
        slowBlock.blockMs = 3000
        let options = slowBlock
        let projectors: [any Projector] = [f.metadata, f.messages]
        let runners = projectors.map { projector -> ProjectorRunner in
            ProjectorRunner(
                projector, log: f.log, scheduler: f.scheduler, lag: f.lag, options: options, consumer: "steady",
                logger: Logger(label: "test"))
        }
        let live = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for runner in runners { group.addTask { try await runner.run() } }
                try await group.waitForAll()
            }
        }
        try await f.waitUntilProjected()
        // The newest five entries go, the readers' connections and the consumer groups stay (a `DEL` of the stream
        // would wake the blocked readers with an error, and their restart would find the loss as a takeover does).
        let stream = f.log.keys.stream(0)
        let entries = try await f.redis.xrange(stream)
        _ = try await f.redis.command(["XDEL", stream] + entries.suffix(5).map(\.id)).orThrow()
        // Appends go on every 20 ms until refused.
        var refused = false
        var n = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while !refused, ContinuousClock.now < deadline {
            do {
                try await f.log.execute(
                    .send(roomId: "club", messageId: "steady-\(n)", body: "steady \(n)", clientMsgId: nil, replyTo: nil),
                    actor: ids["bea"]!)
                n += 1
            } catch is EventLog.LostEntries {
                refused = true
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(refused, "\(n) appends after the loss and none refused")
        #expect(Set(f.lag.lostTail.map(\.projector)).isEmpty == false)
        live.cancel()
        _ = try? await live.value
        try await f.cleanUp()
    }

    @Test func poisonEventsAreParkedAndLaterEventsStillArrive() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        let stream = f.log.keys.stream(0)
        // Unreadable bytes; a user whose username is taken (PostgreSQL refuses it); a message
        // reusing seq 1 of the room (MongoDB's unique index refuses it).
        _ = try await f.redis.xadd(stream, fields: [("event", "{not json")])
        let clash = Event(
            id: "e-clash", at: Date(), actorId: "intruder",
            data: .userRegistered(UserRegistered(userId: "intruder", username: "ada", displayName: "Ada?", passwordHash: "x")))
        _ = try await f.redis.xadd(stream, fields: [("event", try EventCodec.encode(clash))])
        let dupSeq = Event(
            id: "e-dup", at: Date(), actorId: ids["ada"]!, roomId: "club", seq: 1,
            data: .messageSent(MessageSent(messageId: "evil", body: "same seq")))
        _ = try await f.redis.xadd(stream, fields: [("event", try EventCodec.encode(dupSeq))])
        try await f.log.execute(
            .send(roomId: "club", messageId: "after", body: "still here", clientMsgId: nil, replyTo: nil), actor: ids["bea"]!)

        try await f.project()
        #expect(try await f.history.message(id: "after")?.body == "still here")
        #expect(try await f.read.rooms(of: ids["bea"]!).first { $0.room.id == "club" }?.lastMessage?.id == "after")
        #expect(try await f.history.message(id: "evil") == nil)
        #expect(try await f.read.user(id: "intruder") == nil)

        let metadataDead = try await f.redis.xrange("\(f.log.keys.namespace):dead:metadata")
        #expect(metadataDead.count == 2)
        #expect(metadataDead.first?["event"] == "{not json")
        #expect(metadataDead.last?["error"]?.contains("23505") == true)
        let messagesDead = try await f.redis.xrange("\(f.log.keys.namespace):dead:messages")
        #expect(messagesDead.map { $0["event"]?.contains("evil") ?? false } == [false, true])
        #expect(messagesDead.last?["error"]?.contains("duplicate") == true || messagesDead.last?["error"]?.contains("11000") == true)
        try await f.cleanUp()
    }

    @Test func liveProjectionRunsBeforeAHundredThousandEventRebuild() async throws {
        let f = try await ProjectionFixture(partitions: 1, workers: 1)
        let ids = try await f.workload()
        // A log of 100,000 messages to rebuild (written straight to its stream).
        let source = EventLog(redis: f.redis, partitions: 1, namespace: f.log.keys.namespace + "-src")
        let created = Event(
            id: newID(), at: Date(), actorId: "owner", roomId: "big", data: .roomCreated(RoomCreated(kind: .group, name: "Big")))
        var commands = [RedisClient.xaddArguments(source.keys.stream(0), fields: [("event", try EventCodec.encode(created))])]
        for seq in 1...100_000 {
            let event = Event(
                id: "e\(seq)", at: Date(), actorId: "owner", roomId: "big", seq: Int64(seq),
                data: .messageSent(MessageSent(messageId: "big\(seq)", body: "backlog \(seq)")))
            commands.append(RedisClient.xaddArguments(source.keys.stream(0), fields: [("event", try EventCodec.encode(event))]))
            if commands.count == 5000 {
                _ = try await f.redis.pipeline(commands)
                commands = []
            }
        }
        _ = try await f.redis.pipeline(commands)

        let scratch = MetadataProjector(postgres: f.postgres, schema: f.schema + "_rebuild", name: "metadata-rebuild", priority: .rebuild)
        f.scheduler.startTracing()
        let rebuild = Task { try await ProjectionRebuild(log: source, scheduler: f.scheduler, batchSize: 2000).run(scratch) }
        let live = f.runner(f.metadata)
        let liveTask = Task { try await live.run() }
        // Live messages keep coming while the rebuild runs.
        var sentLive = 0
        while sentLive < 40 {
            try await f.log.execute(
                .send(roomId: "club", messageId: "live\(sentLive)", body: "live", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
            sentLive += 1
            try await Task.sleep(for: .milliseconds(20))
        }
        let result = try await rebuild.value
        try await f.waitUntilCaughtUp(f.metadata)
        liveTask.cancel()
        _ = try? await liveTask.value

        #expect(result.applied == 100_001)
        #expect(try await MetadataReadModel(postgres: f.postgres, schema: f.schema + "_rebuild").room(id: "big")?.lastSeq == 100_000)
        #expect(try await f.read.room(id: "club")?.lastSeq == 43)
        let trace = f.scheduler.trace
        let liveJobs = trace.filter { $0.priority == .live }
        let rebuildJobs = trace.filter { $0.priority == .rebuild }
        #expect(rebuildJobs.count >= 50)
        // Live work did wait for the worker (the rebuild kept it busy) and was never passed
        // by a rebuild batch while it waited.
        #expect(liveJobs.contains { $0.waited })
        #expect(liveJobs.allSatisfy { $0.overtakenByLessUrgent == 0 }, "\(liveJobs.filter { $0.overtakenByLessUrgent > 0 })")
        // And live work ran in between rebuild batches, not after the rebuild ended.
        let firstWaitingLive = try #require(trace.firstIndex { $0.priority == .live && $0.waited })
        #expect(trace[firstWaitingLive...].contains { $0.priority == .rebuild })
        try await f.postgres.query("DROP SCHEMA \(f.schema)_rebuild CASCADE")
        try await f.redis.deleteKeys(matching: "\(source.keys.namespace)*")
        source.shutdown()
        try await f.cleanUp()
    }
    /// Seen in CI: a shadow rebuild ran to the log's end as each batch was read, and with a client sending faster than
    /// it took events in (nx-27017 on a loaded machine), it chased the end until `parley-replay` was killed at 60 s.
    @Test func aCatchUpEndsWhileEventsAreAppendedFasterThanItTakesThemIn() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        let slow = SlowProjector(delay: .milliseconds(25))
        let rebuilding = NIOLockedValueBox(true)
        let cap = 5000
        // About three appends per 25 ms batch of one, until the catch-up has ended (or the cap: it never did).
        let appender = Task {
            var n = 0
            while rebuilding.withLockedValue({ $0 }) && n < cap {
                for _ in 0..<3 {
                    try await f.log.execute(
                        .send(roomId: "club", messageId: "fast\(n)", body: "fast \(n)", clientMsgId: nil, replyTo: nil),
                        actor: ids["ada"]!)
                    n += 1
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            return n
        }
        let outcome = try await ProjectionRebuild(log: f.log, scheduler: f.scheduler, batchSize: 1).catchUp(slow)
        rebuilding.withLockedValue { $0 = false }
        let appended = try await appender.value
        #expect(appended < cap, "the catch-up chased the appends to the end")
        // The appends did outpace it: it left some of them for the caller.
        let head = try await f.log.reader.head(partition: 0)
        #expect(StreamID.less(outcome.reached.entryIDs[0], head))
        // What it took in is the log from its start to where it says it reached, once each and in order.
        let logged = try await f.log.reader.entries(partition: 0, after: "0-0", until: outcome.reached.entryIDs[0], count: 100_000)
        #expect(slow.applied == logged.map(\.id))
        #expect(outcome.applied == logged.count)
        try await f.cleanUp()
    }
}

/// Takes `delay` per batch and remembers the entry ids it was given.
private final class SlowProjector: Projector, Sendable {
    let name = "slow"
    let eventTypes = Set(EventType.allCases)
    let priority = ProjectionPriority.rebuild
    let delay: Duration
    private let state = NIOLockedValueBox<[String]>([])
    init(delay: Duration) { self.delay = delay }
    var applied: [String] { state.withLockedValue { $0 } }
    func prepare() async throws {}
    func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64) async throws {
        try await Task.sleep(for: delay)
        state.withLockedValue { $0 += events.map(\.entryID) }
    }
    func fence(partition: Int, epoch: Int64) async throws {}
    func checkpoint(partition: Int) async throws -> String { state.withLockedValue { $0.last ?? "0-0" } }
}
