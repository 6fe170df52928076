import Drivers
import EventLog
import Events

/// Re-projects the log into a projector (usually one writing to a shadow or scratch area)
/// from its checkpoint onwards, in large batches, through the same `apply` as live
/// projection and at rebuild priority on the shared scheduler, so that live work runs
/// first. Stopping it (task cancellation) is safe: a later run resumes at the checkpoint.
public struct ProjectionRebuild: Sendable {
    /// The log read, page by page straight from the streams (not through a consumer group), up to `run`'s `head`.
    public let log: EventLog
    /// Where batches are applied; sharing the server's puts rebuild batches behind live ones (the replayer has its own).
    public let scheduler: PriorityScheduler
    /// Entries read and applied per batch (5,000 by default); the next batch is read while one is applied.
    public let batchSize: Int
    /// The scheduler priority of its batches: `.rebuild` unless told otherwise, below live projection either way.
    public let priority: ProjectionPriority

    /// A batch holds a scheduler worker while it is applied: a smaller `batchSize` shortens live work's wait behind it.
    public init(log: EventLog, scheduler: PriorityScheduler, batchSize: Int = 5000, priority: ProjectionPriority = .rebuild) {
        self.log = log
        self.scheduler = scheduler
        self.batchSize = batchSize
        self.priority = priority
    }

    /// What a run did.
    public struct Outcome: Sendable, Equatable {
        /// Events read from the log and handed to the projector.
        public var applied = 0
        /// Entries that could not be decoded (skipped, as live projection parks them).
        public var unreadable = 0
        /// Where the projector's checkpoint is now, per partition.
        public var reached: LogPosition
    }

    /// Projects every partition from the projector's checkpoint up to `head` (inclusive;
    /// the log's end as each batch is read when nil). `beforeBatch` runs before every batch
    /// (to renew a lease or a hold, or to yield to live projection); `progress` gets the
    /// events applied so far. The next batch is read and decoded while one is applied.
    @discardableResult
    public func run(
        _ projector: any Projector, until head: LogPosition? = nil,
        beforeBatch: (@Sendable (_ partition: Int) async throws -> Void)? = nil,
        progress: (@Sendable (Int) -> Void)? = nil
    ) async throws -> Outcome {
        try await projector.prepare()
        var outcome = Outcome(reached: .start(partitions: log.partitioning.count))
        for partition in 0..<log.partitioning.count {
            var after = try await projector.checkpoint(partition: partition)
            outcome.reached.entryIDs[partition] = after
            let end = head?.entryIDs[partition] ?? "+"
            if end == "0-0" || (end != "+" && !StreamID.less(after, end)) { continue }
            var next = fetch(partition, after: after, end: end)
            while true {
                let batch = try await next.value
                guard let lastID = batch.lastID else { break }
                after = lastID
                let full = batch.entries == batchSize
                if full { next = fetch(partition, after: after, end: end) }
                try Task.checkCancellation()
                try await beforeBatch?(partition)
                let events = batch.events
                if !events.isEmpty {
                    try await scheduler.run(priority, label: "\(projector.name):\(partition)", group: projector.name) {
                        try await projector.apply(events, partition: partition)
                    }
                }
                outcome.applied += events.count
                outcome.unreadable += batch.entries - events.count
                outcome.reached.entryIDs[partition] = lastID
                progress?(outcome.applied)
                if !full { break }
            }
        }
        return outcome
    }

    /// Runs passes up to the log's end as each pass begins, at most `passes` of them, stopping early once a pass finds
    /// no more than one batch, or no fewer events than the pass before (the appends outpace it: more passes would
    /// only grow). Unlike `run` to the moving end, it ends even then; what came after its last pass is left to the
    /// caller (a shadow rebuild takes it in while live projection is held).
    public func catchUp(
        _ projector: any Projector, passes: Int = 3,
        beforeBatch: (@Sendable (_ partition: Int) async throws -> Void)? = nil,
        progress: (@Sendable (Int) -> Void)? = nil
    ) async throws -> Outcome {
        var total = Outcome(reached: .start(partitions: log.partitioning.count))
        var previous = Int.max
        for _ in 0..<max(1, passes) {
            let before = total.applied
            let pass = try await run(
                projector, until: try await log.reader.head(), beforeBatch: beforeBatch, progress: { progress?(before + $0) })
            total.applied += pass.applied
            total.unreadable += pass.unreadable
            total.reached = pass.reached
            let read = pass.applied + pass.unreadable
            if read <= batchSize || read >= previous { break }
            previous = read
        }
        return total
    }

    private struct Batch: Sendable {
        var events: [LoggedEvent]
        var entries: Int
        var lastID: String?
    }

    /// Reads and decodes the batch after `after` in a task of its own.
    private func fetch(_ partition: Int, after: String, end: String) -> Task<Batch, any Error> {
        let log = self.log
        let count = batchSize
        return Task {
            let page = try await log.reader.page(partition: partition, after: after, until: end, count: count)
            return Batch(events: page.events, entries: page.entries, lastID: page.lastEntryID)
        }
    }
}
