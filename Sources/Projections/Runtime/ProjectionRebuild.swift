import Drivers
import EventLog
import Events

/// Re-projects the log into a projector (usually one writing to a shadow or scratch area)
/// from its checkpoint onwards, in large batches, through the same `apply` as live
/// projection and at rebuild priority on the shared scheduler, so that live work runs
/// first. Stopping it (task cancellation) is safe: a later run resumes at the checkpoint.
public struct ProjectionRebuild: Sendable {
    public let log: EventLog
    public let scheduler: PriorityScheduler
    public let batchSize: Int
    public let priority: ProjectionPriority

    public init(log: EventLog, scheduler: PriorityScheduler, batchSize: Int = 5000, priority: ProjectionPriority = .rebuild) {
        self.log = log
        self.scheduler = scheduler
        self.batchSize = batchSize
        self.priority = priority
    }

    /// Projects every partition up to the log's head as of the start of each batch read;
    /// `progress` gets the events applied so far. Returns the events applied and the
    /// entries skipped as unreadable.
    @discardableResult
    public func run(_ projector: any Projector, progress: (@Sendable (Int) -> Void)? = nil) async throws -> (applied: Int, unreadable: Int) {
        try await projector.prepare()
        var applied = 0
        var unreadable = 0
        for partition in 0..<log.partitioning.count {
            var after = try await projector.checkpoint(partition: partition)
            while true {
                try Task.checkCancellation()
                let start = after == "0-0" ? "-" : "(" + after
                let entries = try await log.redis.xrange(log.partitioning.streamKey(partition), from: start, count: batchSize)
                guard let last = entries.last else { break }
                var events: [LoggedEvent] = []
                events.reserveCapacity(entries.count)
                for entry in entries {
                    if let event = try? EventLogDecoding.decode(entry, partition: partition) { events.append(event) } else { unreadable += 1 }
                }
                let batch = events
                try await scheduler.run(priority, label: "\(projector.name):\(partition)", group: projector.name) {
                    try await projector.apply(batch, partition: partition)
                }
                applied += events.count
                progress?(applied)
                after = last.id
                if entries.count < batchSize { break }
            }
        }
        return (applied, unreadable)
    }
}
