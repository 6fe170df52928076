import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation
import Logging
import Projections

/// `parley-bench projection`: projector throughput over a generated log (each projector
/// alone, then both together), and projection lag under a steady message rate.
struct ProjectionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "projection", abstract: "Projector events/s and projection lag.")

    @Option(help: "Events in the generated log.") var events = 100_000
    @Option(help: "Events per batch when rebuilding.") var batch = 5000
    @Option(help: "Messages per second for the lag run (0: skip it).") var rate = 2000
    @Option(help: "Seconds of the lag run.") var seconds = 20.0
    @Option(help: "Skip the MongoDB projector (nx-27017 is slow).") var skipMessages = false
    @Option(
        help:
            "The generated log after set-up: chat (messages, 5% edits, 2% deletions, 10% receipts) or realistic (per 20 events: 12 messages, 5 reactions added or taken back, 2 receipts, 1 reply in a thread with a mention)."
    )
    var mix = "chat"

    func run() async throws {
        let stores = try Stores(StoreConfiguration(environment: ProcessInfo.processInfo.environment))
        try await stores.check()
        if let directory = Migrator.defaultDirectory() {
            try await Migrator(directory: directory).migrate(stores.postgres, logger: Logger(label: "bench"))
        }
        let namespace = "bench-proj-\(UInt32.random(in: 0...UInt32.max))"
        let log = EventLog(redis: stores.redis, partitions: 1, namespace: namespace)
        guard ["chat", "realistic"].contains(mix) else { throw ValidationError("--mix is chat or realistic") }
        let generated = try await generateChatLog(log, redis: stores.redis, events: events, realistic: mix == "realistic")
        print("log: \(mix), \(generated) events")
        print("| projector | events | seconds | events/s |")
        print("|---|---:|---:|---:|")
        let scheduler = PriorityScheduler(workers: 2)
        var cleanups: [() async throws -> Void] = []
        func metadata(_ tag: String) -> MetadataProjector {
            let schema = "bench_\(tag)_\(UInt32.random(in: 0...UInt32.max))"
            cleanups.append { try await stores.postgres.query("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
            return MetadataProjector(postgres: stores.postgres, schema: schema, name: "metadata")
        }
        func messages(_ tag: String) -> MessagesProjector {
            let collection = "bench_\(tag)_\(UInt32.random(in: 0...UInt32.max))"
            cleanups.append {
                try await stores.mongo.collection(collection).drop()
                try await stores.mongo.collection(collection + "_checkpoints").drop()
            }
            return MessagesProjector(mongo: stores.mongo, collection: collection)
        }
        let rebuild = ProjectionRebuild(log: log, scheduler: scheduler, batchSize: batch)
        try await timed("metadata → PostgreSQL, alone", generated) { try await rebuild.run(metadata("alone")) }
        if !skipMessages {
            try await timed("messages → MongoDB (nx-27017), alone", generated) { try await rebuild.run(messages("alone")) }
            let (m, g) = (metadata("both"), messages("both"))
            try await timed("both together (events each)", generated) {
                async let a = rebuild.run(m)
                async let b = rebuild.run(g)
                _ = try await (a, b)
            }
        }
        if rate > 0 { try await lagRun(stores, metadata: metadata("lag"), messages: skipMessages ? nil : messages("lag")) }
        for cleanup in cleanups { try await cleanup() }
        try await stores.redis.deleteKeys(matching: "\(namespace)*")
        log.shutdown()
        await stores.shutdown()
    }

    func timed(_ name: String, _ count: Int, _ body: () async throws -> Void) async throws {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("| \(name) | \(count) | \(String(format: "%.2f", s)) | \(Int(Double(count) / s)) |")
    }

    /// Appends messages at `rate` through the real append path while both projectors run
    /// live, and records for every message the time from its event time to its projection.
    func lagRun(_ stores: Stores, metadata: MetadataProjector, messages: MessagesProjector?) async throws {
        let log = EventLog(redis: stores.redis, partitions: 1, namespace: "bench-lag-\(UInt32.random(in: 0...UInt32.max))")
        let user = "lag-user"
        let other = "lag-other"
        try await log.execute(
            .register(userId: user, username: "laguser\(UInt16.random(in: 0...9999))", displayName: nil, passwordHash: "x"), actor: user)
        try await log.execute(
            .register(userId: other, username: "lagother\(UInt16.random(in: 0...9999))", displayName: nil, passwordHash: "x"), actor: other)
        try await log.execute(.createGroup(roomId: "lag-room", name: "lag", invite: [other]), actor: user)
        try await log.execute(.join(roomId: "lag-room"), actor: other)
        let scheduler = PriorityScheduler(workers: 2)
        let lag = ProjectionLag()
        let recorders = ["metadata": LatencyRecorder(), "messages": LatencyRecorder()]
        var options = ProjectorRunner.Options()
        options.blockMs = 200
        var projectors: [any Projector] = [TimedProjector(metadata, recorders["metadata"]!)]
        if let messages { projectors.append(TimedProjector(messages, recorders["messages"]!)) }
        let runners = projectors.map {
            ProjectorRunner($0, log: log, scheduler: scheduler, lag: lag, options: options, logger: Logger(label: "bench"))
        }
        let live = Task {
            try await withThrowingTaskGroup(of: Void.self) { g in
                for r in runners { g.addTask { try await r.run() } }
                try await g.waitForAll()
            }
        }
        let start = ContinuousClock.now
        let total = Int(Double(rate) * seconds)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<4 {
                group.addTask {
                    var n = sender
                    while n < total {
                        try await Task.sleep(until: start + .microseconds(Int64(Double(n) * 1e6 / Double(rate))))
                        try await log.execute(
                            .send(roomId: "lag-room", messageId: "lag\(n)", body: "lag test \(n)", clientMsgId: nil, replyTo: nil),
                            actor: n.isMultiple(of: 2) ? user : other)
                        n += 4
                    }
                }
            }
            try await group.waitForAll()
        }
        for projector in projectors {
            while try await projector.checkpoint(partition: 0) != (try await log.head().entryIDs[0]) {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        live.cancel()
        _ = try? await live.value
        print("")
        print("| projector | offered msg/s | messages | lag p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in ["metadata", "messages"] where name == "metadata" || messages != nil {
            let s = recorders[name]!.summary
            print(
                "| \(name) | \(rate) | \(recorders[name]!.count) | "
                    + String(format: "%.1f | %.1f | %.1f | %.1f | %.1f |", s.p50, s.p90, s.p99, s.p999, s.max))
        }
        try await stores.redis.deleteKeys(matching: "\(log.keys.namespace)*")
        log.shutdown()
    }
}

/// Wraps a projector and records, for each message it applies, the time from the event's
/// own time (set when it was decided, just before its append) until the apply returned.
struct TimedProjector: WrappingProjector {
    let inner: any Projector
    let recorder: LatencyRecorder
    init(_ inner: any Projector, _ recorder: LatencyRecorder) {
        self.inner = inner
        self.recorder = recorder
    }
    func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64) async throws {
        try await inner.apply(events, partition: partition, epoch: epoch)
        let now = Date()
        for event in events where event.event.type == .messageSent {
            recorder.record(.milliseconds(Int64(now.timeIntervalSince(event.event.at) * 1000)))
        }
    }
}

/// A chat-shaped log of `events` events written straight to partition 0's stream: 100
/// users, 50 rooms they join, then messages with some edits, deletions and read receipts.
/// Written past the rules (and without a hash chain) through `redis`, to make a large log fast.
func generateChatLog(_ log: EventLog, redis: RedisClient, events: Int, realistic: Bool = false) async throws -> Int {
    let stream = log.keys.stream(0)
    var commands: [[String]] = []
    var count = 0
    var seqs: [String: Int64] = [:]
    func add(_ event: Event) async throws {
        commands.append(RedisClient.xaddArguments(stream, fields: [("event", try EventCodec.encode(event))]))
        count += 1
        if commands.count == 5000 {
            _ = try await redis.pipeline(commands)
            commands = []
        }
    }
    let users = (0..<100).map { "bench-u\($0)" }
    for (i, user) in users.enumerated() {
        try await add(
            Event(
                id: newID(), at: Date(), actorId: user,
                data: .userRegistered(.init(userId: user, username: "bench\(i)", displayName: "B\(i)", passwordHash: "x"))))
    }
    let rooms = (0..<50).map { "bench-r\($0)" }
    for (i, room) in rooms.enumerated() {
        try await add(Event(id: newID(), at: Date(), actorId: users[i], roomId: room, data: .roomCreated(.init(kind: .group, name: room))))
        for member in users where member != users[i] {
            try await add(
                Event(id: newID(), at: Date(), actorId: users[i], roomId: room, data: .memberInvited(.init(userId: member, role: .member))))
            try await add(
                Event(id: newID(), at: Date(), actorId: member, roomId: room, data: .memberJoined(.init(userId: member, role: .member))))
        }
    }
    var n = 0
    var reacted: [String: String] = [:]  // user → message they have a reaction on (taken back by their next one)
    var lastOf: [String: String] = [:]  // room → its latest message
    while realistic && count < events {
        let room = rooms[n % rooms.count]
        let user = users[(n * 7) % users.count]
        let at = Date()
        switch (n / rooms.count) % 20 {
        case 12..<17:
            if let message = reacted.removeValue(forKey: user + room) {
                try await add(
                    Event(id: newID(), at: at, actorId: user, roomId: room, data: .reactionRemoved(.init(messageId: message, emoji: "👍"))))
            } else if let message = lastOf[room] {
                reacted[user + room] = message
                try await add(
                    Event(id: newID(), at: at, actorId: user, roomId: room, data: .reactionAdded(.init(messageId: message, emoji: "👍"))))
            }
        case 17..<19:
            try await add(
                Event(id: newID(), at: at, actorId: user, roomId: room, data: .roomRead(.init(seq: max(1, (seqs[room] ?? 1) - 2)))))
        default:
            let seq = (seqs[room] ?? 0) + 1
            seqs[room] = seq
            let id = "bm\(n)"
            let other = (n / rooms.count) % 20 == 19
            let sent = MessageSent(
                messageId: id, body: "message number \(n) of the benchmark", threadRootId: other ? lastOf[room] : nil,
                mentions: other ? [users[(n * 3) % users.count]] : nil)
            try await add(Event(id: newID(), at: at, actorId: user, roomId: room, seq: seq, data: .messageSent(sent)))
            if !other { lastOf[room] = id }
        }
        n += 1
    }
    while count < events {
        let room = rooms[n % rooms.count]
        let user = users[(n * 7) % users.count]
        let seq = (seqs[room] ?? 0) + 1
        seqs[room] = seq
        let id = "bm\(n)"
        try await add(
            Event(
                id: newID(), at: Date(), actorId: user, roomId: room, seq: seq,
                data: .messageSent(.init(messageId: id, body: "message number \(n) of the benchmark"))))
        if n % 20 == 5 {
            try await add(
                Event(id: newID(), at: Date(), actorId: user, roomId: room, data: .messageEdited(.init(messageId: id, body: "edited \(n)")))
            )
        }
        if n % 50 == 7 {
            try await add(Event(id: newID(), at: Date(), actorId: user, roomId: room, data: .messageDeleted(.init(messageId: id))))
        }
        if n % 10 == 3 {
            try await add(
                Event(id: newID(), at: Date(), actorId: users[(n * 3) % users.count], roomId: room, data: .roomRead(.init(seq: seq))))
        }
        n += 1
    }
    _ = try await redis.pipeline(commands)
    return count
}
