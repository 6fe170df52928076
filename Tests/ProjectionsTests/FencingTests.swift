import Drivers
import EventLog
import Events
import Foundation
import Logging
import TestSupport
import Testing

@testable import Projections

/// Stops the next `apply` it is armed for until released: a projector process frozen in the middle of a batch (a long
/// GC pause, SIGSTOP, a VM migrated), whose lease expires meanwhile.
actor Freezer {
    private var armed = false
    private(set) var frozen = false
    private var released = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func arm() { armed = true }
    func release() {
        released = true
        for continuation in waiting { continuation.resume() }
        waiting = []
    }
    var isReleased: Bool { released }

    /// Whether it froze (then the caller writes on, as a process that wakes up does). Cancelling the caller does not
    /// wake it: a frozen process hears nothing.
    func pauseIfArmed() async -> Bool {
        guard armed else { return false }
        armed = false
        frozen = true
        if !released { await withCheckedContinuation { waiting.append($0) } }
        return true
    }
}

/// A projector that freezes when its `Freezer` says so, then writes as if nothing happened.
struct FreezingProjector: WrappingProjector {
    let inner: any Projector
    let freezer: Freezer
    func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64) async throws {
        guard await freezer.pauseIfArmed() else { return try await inner.apply(events, partition: partition, epoch: epoch) }
        // A process that was frozen does not know its lease was lost meanwhile: the write goes out whatever the runner
        // learnt (its renewal task may have cancelled it already).
        let inner = self.inner
        try await Task { try await inner.apply(events, partition: partition, epoch: epoch) }.value
    }
}

/// Two instances project the same partition one at a time by lease. One freezes mid-batch
/// past its lease; the other takes over. When the first wakes it must not write.
@Suite("A projector that lost its lease while frozen")
struct FencingTests {
    func runner(_ f: ProjectionFixture, _ projector: any Projector, consumer: String) -> ProjectorRunner {
        var options = ProjectorRunner.Options()
        options.blockMs = 100
        // 3 s: with 900 ms, a loaded CI machine let the first instance's lease lapse to the second before it froze, and
        // it never froze. The takeover does not wait for it: the test deletes the frozen holder's leases.
        options.lease = .seconds(3)
        options.retryDelay = .milliseconds(5)
        // A scheduler of its own, as in a process of its own: the frozen batch holds one of its workers.
        return ProjectorRunner(
            projector, log: f.log, scheduler: PriorityScheduler(workers: 2), lag: f.lag, options: options, consumer: consumer,
            logger: Logger(label: "test"))
    }

    func start(_ runners: [ProjectorRunner]) -> Task<Void, any Error> {
        Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for runner in runners { group.addTask { try await runner.run() } }
                try await group.waitForAll()
            }
        }
    }

    @Test func wakesUpFencedOffAndNothingIsLostOrAppliedOutOfOrder() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        let freezers = [Freezer(), Freezer()]  // the process's two projectors freeze together
        let first = start([
            runner(f, FreezingProjector(inner: f.metadata, freezer: freezers[0]), consumer: "first"),
            runner(f, FreezingProjector(inner: f.messages, freezer: freezers[1]), consumer: "first"),
        ])
        try await f.waitUntilProjected()
        let second = start([runner(f, f.metadata, consumer: "second"), runner(f, f.messages, consumer: "second")])

        // A steady stream of what each read model must not lose: new users (metadata), messages and their edits (messages).
        let stop = Freezer()  // released: stop writing
        let writer = Task {
            var n = 0
            while await !stop.isReleased {
                n += 1
                try await f.log.execute(
                    .register(userId: "u\(n)", username: "user\(n)", displayName: nil, passwordHash: "x"), actor: "u\(n)")
                try await f.log.execute(
                    .send(roomId: "club", messageId: "m\(n)", body: "sent \(n)", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
                try await f.log.execute(.edit(roomId: "club", messageId: "m\(n)", body: "edited \(n)"), actor: ids["ada"]!)
                try? await Task.sleep(for: .milliseconds(15))
            }
            return n
        }
        for freezer in freezers { await freezer.arm() }
        _ = try await eventually(seconds: 30) {
            for freezer in freezers where !(await freezer.frozen) { throw ProjectionError("not frozen yet") }
            return true
        }
        // Frozen: its leases run out (a frozen process renews nothing), and the second instance takes over.
        for projector in [f.metadata.name, f.messages.name] {
            try await f.redis.command("DEL", f.log.keys.lease(projector, partition: 0))
        }
        _ = try await eventually(seconds: 30) {
            let holders = try await [f.metadata.name, f.messages.name].asyncMap {
                try await f.log.lease($0, partition: 0, owner: "probe").holder()
            }
            guard holders == ["second", "second"] else { throw ProjectionError("holders \(holders)") }
            return true
        }
        try await Task.sleep(for: .seconds(1))
        // The first wakes up and carries on with the batch it held, then keeps reading while events go on arriving.
        for freezer in freezers { await freezer.release() }
        try await Task.sleep(for: .seconds(3))
        await stop.release()
        let written = try await writer.value

        try await f.waitUntilProjected()
        first.cancel()
        second.cancel()
        _ = try? await first.value
        _ = try? await second.value

        // Every user can be found, every message is there once with its edit.
        for n in 1...written {
            #expect(try await f.read.user(id: "u\(n)") != nil, "user u\(n) of \(written) is missing")
        }
        let documents = try await f.messages.documents().find(["roomId": "club"])
        let bodies = Dictionary(documents.map { ($0["_id"]?.stringValue ?? "", $0["body"]?.stringValue ?? "") }) { a, _ in a }
        for n in 1...written where bodies["m\(n)"] != "edited \(n)" {
            Issue.record("message m\(n) reads \(bodies["m\(n)"] ?? "nothing"), not its edit")
        }
        #expect(try await f.read.room(id: "club")?.lastSeq == Int64(documents.count))
        try await f.cleanUp()
    }
}

@Suite("Lease epochs in the read models")
struct EpochFenceTests {
    @Test func aWriteOfAnOlderEpochIsRefusedAndChangesNothing() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        let events = try await f.log.read(partition: 0, count: 10_000)
        // A holder fences before it writes (the runner does at every takeover).
        try await f.metadata.fence(partition: 0, epoch: 1)
        try await f.messages.fence(partition: 0, epoch: 1)
        try await f.metadata.apply(Array(events.dropLast(2)), partition: 0, epoch: 1)
        try await f.messages.apply(Array(events.dropLast(2)), partition: 0, epoch: 1)
        try await f.log.execute(
            .send(roomId: "club", messageId: "late", body: "from the old holder", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        let late = try await f.log.read(partition: 0, count: 10_000)
        let seqBefore = try #require(try await f.read.room(id: "club")?.lastSeq)
        for projector in [f.metadata, f.messages] as [any Projector] {
            let before = try await projector.checkpoint(partition: 0)
            try await projector.fence(partition: 0, epoch: 2)  // a new holder took the partition over
            await #expect(throws: ProjectionFenced.self) { try await projector.apply(late, partition: 0, epoch: 1) }
            #expect(try await projector.checkpoint(partition: 0) == before, "\(projector.name)")
            await #expect(throws: ProjectionFenced.self) { try await projector.fence(partition: 0, epoch: 1) }
        }
        // Nothing of the old holder's refused batch is in either read model.
        #expect(try await f.history.message(id: "late") == nil)
        #expect(try await f.read.room(id: "club")?.lastSeq == seqBefore)
        // The new holder's write of the same events goes through.
        for projector in [f.metadata, f.messages] as [any Projector] {
            try await projector.apply(late, partition: 0, epoch: 2)
            #expect(try await projector.checkpoint(partition: 0) == late.last?.entryID)
        }
        #expect(try await f.history.message(id: "late")?.body == "from the old holder")
        #expect(try await f.read.room(id: "club")?.lastSeq == late.last?.event.seq)
        try await f.cleanUp()
    }
}

@Suite("A shadow swap by pointer")
struct PointerSwapTests {
    /// A replayer that died after it moved the pointer and before it marked the old collection: a projector that
    /// names the old collection still follows the pointer (within a second), and the next swap retires the leftover.
    @Test func aSwapInterruptedAfterThePointerMovedIsFollowedAndCleanedUp() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        let events = try await f.log.read(partition: 0, count: 10_000)
        let elsewhere = MessagesProjector(mongo: f.mongo, collection: f.schema)
        try await elsewhere.prepare()
        try await elsewhere.fence(partition: 0, epoch: 2)
        try await elsewhere.apply(events, partition: 0, epoch: 2)
        let location = MessagesLocation(mongo: f.mongo, base: f.schema)
        let v1 = try await location.nextArea()
        let shadow = MessagesProjector(mongo: f.mongo, location: MessagesLocation(mongo: f.mongo, fixed: v1), priority: .rebuild)
        try await shadow.prepare()
        try await shadow.apply(events, partition: 0)
        // The replayer's first steps only: the pointer moves, nothing is marked, nothing dropped.
        try await location.point(to: v1, version: 1, retiring: [f.schema])
        try await Task.sleep(for: MessagesLocation.readerRefresh + .milliseconds(200))
        try await f.log.execute(.send(roomId: "club", messageId: "late", body: "late", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        let late = try await f.log.read(partition: 0, count: 10_000).suffix(1)
        try await elsewhere.apply(Array(late), partition: 0, epoch: 2)
        #expect(try await f.mongo.collection(v1).findOne(["_id": "late"]) != nil)
        #expect(try await f.history.message(id: "late")?.body == "late")

        // The next rebuild's swap retires both the live version and the leftover.
        let v2 = try await location.nextArea()
        let next = MessagesProjector(mongo: f.mongo, location: MessagesLocation(mongo: f.mongo, fixed: v2), priority: .rebuild)
        try await next.prepare()
        try await next.apply(try await f.log.read(partition: 0, count: 10_000), partition: 0)
        let replaced = try await next.promote(over: f.messages)
        #expect(Set(replaced) == [v1, f.schema])
        for name in replaced { try await f.messages.dropArea(named: name) }
        #expect(try await location.pointed().retiring.isEmpty)
        #expect(try await f.mongo.collection(f.schema).count() == 0)
        #expect(try await f.history.message(id: "late")?.body == "late")
        try await f.cleanUp()
    }

    /// Another server instance still names the replaced collection when the pointer moves: its next batch lands in the
    /// new collection (the old one is marked moved), and once the old one is dropped nothing is written there again.
    @Test func aProjectorThatStillNamesTheOldCollectionWritesToTheNewOne() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        let events = try await f.log.read(partition: 0, count: 10_000)
        let elsewhere = MessagesProjector(mongo: f.mongo, collection: f.schema)  // another instance's projector
        try await elsewhere.prepare()
        try await elsewhere.fence(partition: 0, epoch: 3)
        try await elsewhere.apply(events, partition: 0, epoch: 3)
        let stale = MessagesProjector(mongo: f.mongo, collection: f.schema)  // a third, idle until after the drop
        try await stale.prepare()

        // The replayer builds version 1 beside it and moves the pointer.
        let next = try await MessagesLocation(mongo: f.mongo, base: f.schema).nextArea()
        #expect(next == "\(f.schema)_v1")
        let shadow = MessagesProjector(mongo: f.mongo, location: MessagesLocation(mongo: f.mongo, fixed: next), priority: .rebuild)
        try await shadow.prepare()
        try await shadow.apply(events, partition: 0)
        let replaced = try #require(try await shadow.promote(over: f.messages).first)
        #expect(replaced == f.schema)

        // The other instance's next batch goes to the new collection, under its own epoch.
        try await f.log.execute(
            .send(roomId: "club", messageId: "after-swap", body: "one", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        let first = try await f.log.read(partition: 0, count: 10_000)
        try await elsewhere.apply(Array(first.suffix(1)), partition: 0, epoch: 3)
        #expect(try await f.mongo.collection(next).findOne(["_id": "after-swap"]) != nil)
        #expect(try await f.mongo.collection(f.schema).findOne(["_id": "after-swap"]) == nil)
        #expect(try await elsewhere.checkpoint(partition: 0) == first.last?.entryID)
        // An older holder is refused in the new collection too: the swap carried the epoch over.
        await #expect(throws: ProjectionFenced.self) { try await elsewhere.apply(Array(first.suffix(1)), partition: 0, epoch: 2) }

        // The old collection is dropped; a third projector that prepared before the swap writes to the new one as well.
        try await f.messages.dropArea(named: replaced)
        await #expect(throws: DriverError.self) { try await f.messages.dropArea(named: next) }
        try await f.log.execute(
            .send(roomId: "club", messageId: "after-drop", body: "two", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        let second = try await f.log.read(partition: 0, count: 10_000)
        try await stale.apply(Array(second.suffix(1)), partition: 0, epoch: 3)
        #expect(try await f.history.message(id: "after-drop")?.body == "two")
        #expect(try await f.mongo.collection(f.schema).count() == 0)
        try await f.cleanUp()
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
