import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation

/// `parley-bench appends`: rule-checked `message.sent` appends through `EventLog.execute`
/// (state read, decide, the atomic Lua append), as the server does them.
struct AppendBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "appends", abstract: "Rule-checked message appends: throughput, and latency at a fixed rate.")

    @Option(help: "Concurrent senders.") var senders = 16
    @Option(help: "Rooms the senders write to (senders are spread over them).") var rooms = 16
    @Option(help: "Offered appends per second for the latency run; 0 runs closed-loop as fast as possible.") var rate = 0
    @Option(help: "Seconds to run.") var seconds = 10.0
    @Option(help: "Log partitions.") var partitions = 1
    @Option(help: "The log's namespace (a random one by default), to run a server's archiver beside it.") var namespace: String?
    @Option(help: "How long client message ids are remembered (PARLEY_DEDUPE_SECONDS).") var dedupeSeconds = 604_800
    @Flag(help: "Leave the log in Redis at the end (to measure its memory, or archive it).") var keep = false
    @Option(help: "What is appended: messages (message.sent) or reactions (each sender adds and takes back a reaction to a message).")
    var kind = "messages"

    func run() async throws {
        let stores = try StoreConfiguration(environment: ProcessInfo.processInfo.environment)
        // PARLEY_REDIS_CLUSTER and PARLEY_ACK_REPLICAS apply as in the server.
        var configuration = stores.redis
        configuration.maxConnections = max(senders * 2, 8)
        let redis = try RedisClient(configuration)
        let log = EventLog(
            redis: redis, partitions: partitions, namespace: namespace ?? "bench-\(UInt32.random(in: 0...UInt32.max))",
            dedupe: DedupeWindow(seconds: dedupeSeconds))
        // Users and rooms: every sender is a joined member of the rooms it writes to.
        let userIds = (0..<senders).map { "bench-user-\($0)" }
        for (i, id) in userIds.enumerated() {
            try await log.execute(.register(userId: id, username: "bencher\(i)", displayName: nil, passwordHash: "x"), actor: id)
        }
        let roomIds = (0..<rooms).map { "bench-room-\($0)" }
        for roomId in roomIds {
            try await log.execute(.createGroup(roomId: roomId, name: roomId, invite: Array(userIds.dropFirst())), actor: userIds[0])
            for id in userIds.dropFirst() { try await log.execute(.join(roomId: roomId), actor: id) }
        }

        guard ["messages", "reactions"].contains(kind) else { throw ValidationError("--kind is messages or reactions") }
        let reactions = kind == "reactions"
        // For reactions: one message per sender, which it reacts to.
        if reactions {
            for (sender, actor) in userIds.enumerated() {
                try await log.execute(
                    .send(
                        roomId: roomIds[sender % rooms], messageId: "target-\(sender)", body: "react to me", clientMsgId: nil, replyTo: nil),
                    actor: actor)
            }
        }
        let latencies = LatencyRecorder()
        let service = LatencyRecorder()  // from the actual start of the call: excludes the generator's own timer lateness
        let lateness = LatencyRecorder()
        let body = String(repeating: "m", count: 120)
        let start = ContinuousClock.now
        let end = start + .milliseconds(Int(seconds * 1000))
        let perSender = rate > 0 ? Double(rate) / Double(senders) : 0
        let sendersCount = senders
        let roomCount = rooms
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<sendersCount {
                group.addTask {
                    var n = 0
                    let actor = userIds[sender]
                    let room = roomIds[sender % roomCount]
                    while true {
                        // Open loop at a fixed rate: each send has a scheduled time and its
                        // latency counts from then (no coordinated omission).
                        let scheduled = perSender > 0 ? start + .milliseconds(Int(Double(n) * 1000 / perSender)) : ContinuousClock.now
                        if scheduled >= end || ContinuousClock.now >= end { break }
                        if perSender > 0 { try await Task.sleep(until: scheduled) }
                        let began = ContinuousClock.now
                        lateness.record(began - scheduled)
                        if reactions {
                            let target = "target-\(sender)"
                            try await log.execute(
                                n.isMultiple(of: 2)
                                    ? .react(roomId: room, messageId: target, emoji: "👍")
                                    : .unreact(roomId: room, messageId: target, emoji: "👍"),
                                actor: actor)
                        } else {
                            try await log.execute(
                                .send(
                                    roomId: room, messageId: "m-\(sender)-\(n)", body: body, clientMsgId: "c-\(sender)-\(n)", replyTo: nil),
                                actor: actor)
                        }
                        let done = ContinuousClock.now
                        latencies.record(done - scheduled)
                        service.record(done - began)
                        n += 1
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let secondsTaken = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let s = latencies.summary
        let offered = rate > 0 ? "\(rate)/s" : "max"
        print("| kind | senders | rooms | offered | appends | appends/s | p50 ms | p99 ms | p99.9 ms | max ms |")
        print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        print(
            "| \(kind) | \(senders) | \(rooms) | \(offered) | \(latencies.count) | \(Int(Double(latencies.count) / secondsTaken)) | "
                + String(format: "%.2f | %.2f | %.2f | %.2f |", s.p50, s.p99, s.p999, s.max))
        if rate > 0 {
            let c = service.summary
            let l = lateness.summary
            print(
                String(
                    format: "  call only: p50 %.2f p99 %.2f p99.9 %.2f ms; generator timer lateness: p50 %.2f p99 %.2f ms", c.p50, c.p99,
                    c.p999, l.p50, l.p99))
        }
        // Leave no benchmark keys behind (unless asked to).
        if !keep { try await redis.deleteKeys(matching: "\(log.keys.namespace):*") }
        log.shutdown()
        await redis.shutdown()
    }
}
