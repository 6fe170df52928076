import Drivers
import EventLog
import Events
import Foundation
import Projections

/// What the replayer needs of a projector's read model beyond projecting: emptying it,
/// dropping a shadow or scratch copy, and swapping a copy in for the live one.
protocol ReplayableProjector: Projector {
    /// Empties the read model and its checkpoints.
    func reset() async throws
    /// Drops this (shadow or scratch) area entirely.
    func dropArea() async throws
    /// Whether this area holds an earlier, unfinished build to resume.
    func areaExists() async throws -> Bool
    /// Replaces `live`'s read model with this one's while live writes are held; what is left to do with the old one
    /// once they are released.
    func swapIn(over live: any Projector, keepOld: Bool) async throws -> Swapped
}

/// What a swap did, and what it leaves to do after the hold is released.
struct Swapped: Sendable {
    /// What happened to the old read model, for the operator.
    var description: String
    /// Drops the old read model once no reader can be reading it any more; nil when there is nothing left to do.
    var retire: (@Sendable () async throws -> Void)?
}

/// A projector whose read model is tables in a PostgreSQL schema of its own: its area is the schema, and a swap moves the
/// tables in one transaction (the metadata and search projectors).
protocol SchemaProjector: ReplayableProjector {
    func dropSchema() async throws
    func schemaExists() async throws -> Bool
    func swap(into live: Self, keepOld: Bool) async throws -> String
}

extension SchemaProjector {
    func dropArea() async throws { try await dropSchema() }
    func areaExists() async throws -> Bool { try await schemaExists() }
    func swapIn(over live: any Projector, keepOld: Bool) async throws -> Swapped {
        let retired = try await swap(into: live as! Self, keepOld: keepOld)
        return Swapped(description: keepOld ? "old tables kept in schema \(retired)" : "old tables dropped", retire: nil)
    }
}

extension MetadataProjector: SchemaProjector {}
extension SearchProjector: SchemaProjector {}

extension MessagesProjector: ReplayableProjector {
    func dropArea() async throws { try await dropCollections() }
    func areaExists() async throws -> Bool { try await hasCheckpoints() }
    func swapIn(over live: any Projector, keepOld: Bool) async throws -> Swapped {
        let live = live as! MessagesProjector
        let replaced = try await promote(over: live)
        let now = try await currentArea().name
        let names = replaced.joined(separator: ", ")
        if keepOld {
            for name in replaced { try await live.location.retired(name) }
            return Swapped(description: "readers now follow \(now); old collection kept as \(names)", retire: nil)
        }
        return Swapped(
            description: "readers now follow \(now); old collection \(names) dropped",
            retire: {
                // Readers re-read the pointer every `readerRefresh`: after twice that, nobody reads the old one.
                try await Task.sleep(for: MessagesLocation.readerRefresh * 2)
                for name in replaced { try await live.dropArea(named: name) }
            })
    }
}

/// A rebuild was refused, with the reason and what to do instead.
struct Refused: Error, CustomStringConvertible {
    let description: String
}

/// `parley-replay rebuild`: re-projects the whole log through the live projectors' own
/// code, in place or beside the live read models (`--shadow`).
struct Rebuilder: Sendable {
    let context: ReplayContext
    let batchSize: Int
    let progressInterval: Double
    /// Who holds leases and holds: `parley-replay-<pid>-<random>`.
    let owner = "parley-replay-\(ProcessInfo.processInfo.processIdentifier)-\(UInt16.random(in: 0...UInt16.max))"
    /// A live projector further behind than this many events in a partition makes a
    /// shadow rebuild wait before its next batch: live projection comes first.
    var liveLagLimit = 2000

    var log: EventLog { context.log }

    // MARK: - In place

    /// Empties the live read model and projects the whole log into it. Refuses while a
    /// live projector runs (it holds a partition lease); holds every lease itself
    /// meanwhile, so no server starts projecting half way. An interrupted run leaves a
    /// marker (`<ns>:rebuild:<projector>`) and the next run resumes at the checkpoint.
    func inPlace(_ projection: ReplayContext.Projection) async throws -> String {
        let projector = try await context.projector(projection)
        let name = projector.name
        let leases = (0..<log.partitioning.count).map { log.lease(name, partition: $0, owner: owner) }
        for (partition, lease) in leases.enumerated() {
            guard try await lease.acquire() else {
                let holder = try await lease.holder() ?? "?"
                await release(leases)
                throw Refused(
                    description: "the live \(name) projector is running (\(holder) holds partition \(partition)): "
                        + "stop parley-server's projectors role first, or rebuild with --shadow while it serves")
            }
        }
        do {
            let marker = log.rebuildMarker(name)
            let resumed = try await marker.isSet()
            if !resumed {
                try await projector.reset()
                try await marker.set(owner: owner)
            }
            // A resumed run does not know how much is left without reading it: no ETA then.
            let total = resumed ? nil : try await log.reader.length()
            let progress = Progress("rebuild \(name)", total: total, interval: progressInterval)
            let rebuild = ProjectionRebuild(log: log, scheduler: PriorityScheduler(workers: 1), batchSize: batchSize)
            // The leases are renewed while the rebuild works, however long a batch takes.
            let outcome = try await PartitionLease.renewing(leases) {
                try await rebuild.run(projector, progress: { progress.update($0) })
            }
            try await marker.clear()
            await release(leases)
            progress.finish(outcome.applied, suffix: resumed ? " (resumed)" : "")
            return "rebuild \(name): done in place at \(outcome.reached)" + unreadable(outcome)
        } catch {
            await release(leases)
            throw error
        }
    }

    /// Runs in a task of its own: after Ctrl-C the caller's task is cancelled, and the
    /// leases must still be given back.
    private func release(_ leases: [PartitionLease]) async {
        await Task { for lease in leases { try? await lease.release() } }.value
    }

    private func unreadable(_ outcome: ProjectionRebuild.Outcome) -> String {
        outcome.unreadable == 0 ? "" : " (\(outcome.unreadable) unreadable entries skipped)"
    }

    // MARK: - Shadow

    /// Builds the read model beside the live one (`<schema>_shadow`, the messages
    /// collection's next version `<collection>_v<n>`) while the server keeps serving,
    /// yielding to live projection whenever it falls behind; then holds live writes for a
    /// moment, catches up, checks the shadow holds what the live one does and swaps it in
    /// (one transaction in PostgreSQL, a pointer move in MongoDB). An interrupted run leaves the shadow, and the next run
    /// resumes it (`restart` starts over).
    func shadow(_ projection: ReplayContext.Projection, restart: Bool, keepOld: Bool) async throws -> String {
        let live = try await context.projector(projection)
        let shadow = try await context.projector(projection, area: "shadow")
        let name = live.name
        let resumed = restart ? false : try await shadow.areaExists()
        if !resumed { try await shadow.dropArea() }
        let total = resumed ? nil : try await log.reader.length()
        let progress = Progress("rebuild \(name) (shadow)", total: total, interval: progressInterval)
        let rebuild = ProjectionRebuild(log: log, scheduler: PriorityScheduler(workers: 1), batchSize: batchSize)
        // Up to the log's end as each pass begins: chasing the moving end, a rebuild slower than the appends never ended.
        let outcome = try await rebuild.catchUp(
            shadow, beforeBatch: { partition in try await self.yieldToLive(name, partition: partition, progress: progress) },
            progress: { progress.update($0) })

        // Caught up with the log as it was a moment ago: hold live writes, take the last
        // events in, swap.
        let hold = log.hold(name)
        try await hold.acquire(owner: owner, partitions: log.partitioning.count)
        let tail: ProjectionRebuild.Outcome
        let swapped: Swapped
        do {
            try await hold.waitUntilQuiet(partitions: log.partitioning.count)
            // The log's end now is at or past every live checkpoint (live writes are held, and quiet).
            tail = try await rebuild.run(shadow, until: try await log.reader.head(), beforeBatch: { _ in try await hold.renew() })
            try await hold.renew()
            try await checkCaughtUp(shadow, live: live)
            swapped = try await shadow.swapIn(over: live, keepOld: keepOld)
            try await hold.release()
        } catch {
            // In a task of its own: after Ctrl-C this task is cancelled, and live
            // projection must not stay held until the hold expires.
            await Task { try? await hold.release() }.value
            throw error
        }
        try await swapped.retire?()
        progress.finish(outcome.applied + tail.applied, suffix: resumed ? " (resumed)" : "")
        return "rebuild \(name): shadow swapped in at \(tail.reached), \(swapped.description)" + unreadable(outcome)
    }

    /// The shadow is swapped in only when it holds everything the live read model holds: in every partition its
    /// checkpoint is at or past the live one's (live writes are held, so that cannot move). What the live projector
    /// read and has not acknowledged is applied again to the new read model after the release (idempotently), and what
    /// it has not read yet it reads then; otherwise the live read model stays as it is.
    private func checkCaughtUp(_ shadow: any ReplayableProjector, live: any ReplayableProjector) async throws {
        for partition in 0..<log.partitioning.count {
            let reached = try await shadow.checkpoint(partition: partition)
            let applied = try await live.checkpoint(partition: partition)
            // A live checkpoint the log no longer has (it lost its tail): the operator is accepting the loss.
            if StreamID.less(reached, applied), !(try await log.reader.lacks(partition: partition, entryID: applied)) {
                throw Refused(
                    description:
                        "the \(live.name) shadow reached \(reached) in partition \(partition), the live read model \(applied): not swapped, the live read model is unchanged"
                )
            }
        }
    }

    /// Waits while the live projector is running (holds `partition`'s lease) and more than
    /// `liveLagLimit` events behind there: a rebuild must not slow live projection down.
    /// Gives up waiting after a minute (a stuck live projector must not stop a repair).
    private func yieldToLive(_ name: String, partition: Int, progress: Progress) async throws {
        let lease = log.lease(name, partition: partition, owner: owner)
        let group = log.consumerGroup(name, partition: partition, consumer: owner)
        for _ in 0..<600 {
            guard try await lease.holder() != nil, let behind = try await group.lag()?.events, behind > liveLagLimit else { return }
            progress.note("waiting: live projection is \(behind) events behind")
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
