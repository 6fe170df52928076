import Events
import Foundation
import TestSupport
import Testing

@testable import EventLog

/// A log of its own (its own key namespace) on the shared Redis, with registered users.
struct TestLog {
    let log: EventLog
    let redis: RedisClient

    init(partitions: Int = 1, maxConnections: Int = 32, dedupe: DedupeWindow = DedupeWindow(seconds: 604_800)) throws {
        redis = try TestStores.redis(maxConnections: maxConnections)
        log = EventLog(redis: redis, partitions: partitions, namespace: TestStores.unique("tlog"), dedupe: dedupe)
    }

    /// Registers users and returns their ids, by name.
    func users(_ names: String...) async throws -> [String: String] {
        var ids: [String: String] = [:]
        for name in names {
            let id = "u-\(name)-\(UUID().uuidString.prefix(8))"
            try await log.execute(.register(userId: id, username: name, displayName: nil, passwordHash: "$2b$12$secret"), actor: id)
            ids[name] = id
        }
        return ids
    }

    func all() async throws -> [LoggedEvent] {
        try await log.read(after: .start(partitions: log.partitioning.count), count: 100_000)
    }

    func messages(in roomId: String) async throws -> [LoggedEvent] {
        try await all().filter { $0.event.roomId == roomId && $0.event.type == .messageSent }
    }

    /// Waits on every group of partitions the log can tail together (one on a single Redis, one per partition on a
    /// cluster) and merges what they read, as the hub's loops do between them.
    func tailEveryGroup(after position: LogPosition, blockMs: Int) async throws -> LogReader.MergedPage {
        let log = self.log
        let pages = try await withThrowingTaskGroup(of: ([Int], LogReader.MergedPage).self) { group in
            for partitions in log.tailGroups {
                group.addTask { (partitions, try await log.tail(after: position, partitions: partitions, blockMs: blockMs)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var merged = pages[0].1
        merged.events = pages.flatMap(\.1.events)
        merged.unreadable = pages.flatMap(\.1.unreadable)
        for (partitions, page) in pages {
            for partition in partitions { merged.reached.entryIDs[partition] = page.reached.entryIDs[partition] }
        }
        return merged
    }

    func cleanUp() async throws {
        try await redis.deleteKeys(matching: "\(log.keys.namespace)*")
        log.shutdown()
        await redis.shutdown()
    }
}

@Suite("The event log against real Redis")
struct EventLogTests {
    @Test func fiftyConcurrentFirstMessagesMakeOneDirectRoom() async throws {
        let t = try TestLog()
        let u = try await t.users("ann", "ben")
        let (ann, ben) = (u["ann"]!, u["ben"]!)
        let outcomes = try await withThrowingTaskGroup(of: EventLog.Outcome.self) { group in
            for i in 0..<50 {
                let (from, to) = i.isMultiple(of: 2) ? (ann, ben) : (ben, ann)
                group.addTask {
                    try await t.log.execute(.sendDirect(to: to, messageId: "m\(i)", body: "hello \(i)", clientMsgId: nil), actor: from)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let events = try await t.all()
        let created = events.filter { $0.event.type == .roomCreated }
        #expect(created.count == 1)
        let roomId = Partitioning.directRoomId(ann, ben)
        #expect(created.first?.event.roomId == roomId)
        let sent = events.filter { $0.event.type == .messageSent }
        #expect(sent.count == 50)
        #expect(sent.compactMap(\.event.seq) == Array(1...50))
        #expect(outcomes.filter { $0.events.count == 2 }.count == 1)  // one of them created the room
        try await t.cleanUp()
    }

    @Test func sixtyFourConcurrentSendersGetGaplessSeqs() async throws {
        let t = try TestLog(partitions: 4)
        let names = (0..<8).map { "sender\($0)" }
        var registered: [String] = []
        for name in names { registered.append(try await t.users(name)[name]!) }
        let ids = registered
        let owner = ids[0]
        try await t.log.execute(.createGroup(roomId: "room-64", name: "busy", invite: Array(ids.dropFirst())), actor: owner)
        for id in ids.dropFirst() { try await t.log.execute(.join(roomId: "room-64"), actor: id) }
        let seqs = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for sender in 0..<64 {
                group.addTask {
                    var mine: [Int64] = []
                    for n in 0..<5 {
                        let outcome = try await t.log.execute(
                            .send(roomId: "room-64", messageId: "m-\(sender)-\(n)", body: "from \(sender)", clientMsgId: nil, replyTo: nil),
                            actor: ids[sender % ids.count])
                        mine += outcome.events.compactMap(\.event.seq)
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(seqs.sorted() == Array(1...320))
        let stored = try await t.messages(in: "room-64")
        #expect(stored.compactMap(\.event.seq) == Array(1...320))  // log order is seq order
        try await t.cleanUp()
    }

    @Test func aSendFromAMemberRemovedAMomentEarlierIsRefused() async throws {
        let t = try TestLog()
        let u = try await t.users("owner", "mallory", "other")
        try await t.log.execute(.createGroup(roomId: "r", name: "r", invite: [u["mallory"]!, u["other"]!]), actor: u["owner"]!)
        try await t.log.execute(.join(roomId: "r"), actor: u["mallory"]!)
        try await t.log.execute(.send(roomId: "r", messageId: "m1", body: "in", clientMsgId: nil, replyTo: nil), actor: u["mallory"]!)
        try await t.log.execute(.remove(roomId: "r", userId: u["mallory"]!), actor: u["owner"]!)
        let before = try await t.all().count
        await #expect(throws: RuleError(.notAMember, "not a member of room r")) {
            try await t.log.execute(
                .send(roomId: "r", messageId: "m2", body: "still here?", clientMsgId: nil, replyTo: nil), actor: u["mallory"]!)
        }
        #expect(try await t.all().count == before)

        // Racing: removal and sends at the same time. Every send the log accepted comes
        // before the removal in the log; none after it.
        try await t.log.execute(.join(roomId: "r"), actor: u["other"]!)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<20 {
                group.addTask {
                    _ = try? await t.log.execute(
                        .send(roomId: "r", messageId: "race\(n)", body: "x", clientMsgId: nil, replyTo: nil), actor: u["other"]!)
                }
            }
            group.addTask { try await t.log.execute(.remove(roomId: "r", userId: u["other"]!), actor: u["owner"]!) }
            try await group.waitForAll()
        }
        let events = try await t.all()
        let removal = try #require(
            events.lastIndex { $0.event.data == .memberRemoved(MemberChange(userId: u["other"]!, previousState: .joined)) })
        #expect(!events[removal...].contains { $0.event.type == .messageSent && $0.event.actorId == u["other"]! })
        try await t.cleanUp()
    }

    @Test func aClientMsgIdIsRememberedForTheDedupeWindowThenForgotten() async throws {
        let t = try TestLog(dedupe: DedupeWindow(seconds: 30))
        let u = try await t.users("dee", "dan")
        let start = Date()
        func send(_ id: String, after seconds: Double) async throws -> EventLog.Outcome {
            try await t.log.execute(
                .sendDirect(to: u["dan"]!, messageId: id, body: "hi", clientMsgId: "k"), actor: u["dee"]!,
                now: start.addingTimeInterval(seconds))
        }
        #expect(try await send("first", after: 0).duplicate == false)
        // Within the window's length: the first message, whichever window the repeat falls in.
        #expect(try await send("again", after: 29).duplicate)
        // More than two windows later: a new message.
        let later = try await send("later", after: 65)
        #expect(later.duplicate == false)
        let roomId = Partitioning.directRoomId(u["dee"]!, u["dan"]!)
        #expect(try await t.messages(in: roomId).count == 2)
        // The ids are kept in hashes that expire: none outlives two windows.
        let windows = try await t.redis.keys(matching: "\(t.log.keys.namespace):g:*:cmid:*")
        #expect(windows.count == 2)
        for key in windows {
            let ttl = try await t.redis.command("PTTL", key).int ?? -1
            #expect(ttl > 0 && ttl <= 125_000, "\(key): \(ttl)")
        }
        try await t.cleanUp()
    }

    @Test func theSameClientMsgIdTenTimesAppendsOneMessage() async throws {
        let t = try TestLog()
        let u = try await t.users("amy", "boris")
        let results = try await withThrowingTaskGroup(of: EventLog.Outcome.self) { group in
            for i in 0..<10 {
                group.addTask {
                    try await t.log.execute(
                        .sendDirect(to: u["boris"]!, messageId: "attempt\(i)", body: "once", clientMsgId: "client-1"), actor: u["amy"]!)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let roomId = Partitioning.directRoomId(u["amy"]!, u["boris"]!)
        let stored = try await t.messages(in: roomId)
        #expect(stored.count == 1)
        #expect(results.filter { !$0.duplicate }.count == 1)
        let ids = Set(
            results.compactMap { $0.events.last?.event.data }.compactMap { data -> String? in
                if case .messageSent(let m) = data { return m.messageId } else { return nil }
            })
        #expect(ids.count == 1)  // every caller got the first message back
        // Another user may use the same clientMsgId; so may the same user in another room.
        try await t.log.execute(.sendDirect(to: u["amy"]!, messageId: "other", body: "mine", clientMsgId: "client-1"), actor: u["boris"]!)
        #expect(try await t.messages(in: roomId).count == 2)
        try await t.cleanUp()
    }

    @Test func refusalsAreTypedAndAppendNothing() async throws {
        let t = try TestLog()
        let u = try await t.users("zed", "yan")
        try await t.log.execute(.createGroup(roomId: "g", name: "g", invite: []), actor: u["zed"]!)
        let before = try await t.all().count
        let cases: [(Command, String, RuleError.Code)] = [
            (.send(roomId: "g", messageId: "m", body: "x", clientMsgId: nil, replyTo: nil), u["yan"]!, .notAMember),
            (.send(roomId: "nope", messageId: "m", body: "x", clientMsgId: nil, replyTo: nil), u["zed"]!, .notFound),
            (
                .send(roomId: "g", messageId: "m", body: String(repeating: "x", count: 4001), clientMsgId: nil, replyTo: nil), u["zed"]!,
                .tooLarge
            ),
            (.sendDirect(to: "ghost", messageId: "m", body: "x", clientMsgId: nil), u["zed"]!, .notFound),
            (.invite(roomId: "g", userId: u["yan"]!), u["yan"]!, .notAMember),
            (.register(userId: "dup", username: "ZED", displayName: nil, passwordHash: "h"), "dup", .usernameTaken),
            (.join(roomId: "g"), u["yan"]!, .forbidden),
        ]
        for (command, actor, code) in cases {
            do {
                try await t.log.execute(command, actor: actor)
                Issue.record("\(command) was accepted")
            } catch let error as RuleError {
                #expect(error.code == code, "\(command)")
            }
        }
        #expect(try await t.all().count == before)
        try await t.cleanUp()
    }

    @Test func usernamesAreUniqueUnderRacingRegistrations() async throws {
        let t = try TestLog()
        let accepted = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<10 {
                group.addTask {
                    (try? await t.log.execute(
                        .register(userId: "u\(i)", username: "taken", displayName: nil, passwordHash: "h"), actor: "u\(i)")) != nil
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(accepted == 1)
        #expect(try await t.all().filter { $0.event.type == .userRegistered }.count == 1)
        try await t.cleanUp()
    }
}
