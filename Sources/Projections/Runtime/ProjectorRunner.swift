import Drivers
import EventLog
import Events
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// Runs one projector live: for each partition, reads the log through the projector's
/// Redis consumer group in batches, applies each batch on the priority scheduler, then
/// acknowledges it. Delivery is at least once, so `apply` is idempotent.
///
/// One consumer per partition at a time: a `PartitionLease` lets one server instance
/// project a partition, which keeps events in log order even with several instances; when
/// a holder dies its lease expires, another instance takes over and first claims and
/// applies what the dead one had read but not acknowledged (`ConsumerGroup.claimAll`).
///
/// An event that fails for a reason other than a store outage is retried with backoff,
/// then parked in the dead-letter stream `<ns>:dead:<projector>` with its error, counted
/// (`parley.projector.dead_letters`) and logged once; the projector goes on with the next.
public struct ProjectorRunner: Service {
    /// How the runner reads and retries; the server keeps the defaults but `lingerMs` (`PARLEY_PROJECTOR_LINGER_MS`).
    public struct Options: Sendable {
        /// The most entries read, applied and acknowledged together (also the batch of the takeover's claim).
        public var batchSize = 1000
        /// How long one read of new entries waits in Redis (`XREADGROUP BLOCK`) before the loop goes round (lease, lag).
        public var blockMs = 1000
        /// The partition lease's time to live (`PartitionLease.ttl`, 10 s): how long a dead holder keeps its partitions.
        public var lease = PartitionLease.ttl
        /// After a batch smaller than `batchSize`, wait this long before reading the next:
        /// under load the next batch is then larger, and every store round trip (the read,
        /// the acknowledgement, the write and its checkpoint) is shared by more events. It
        /// adds at most this much to the projection lag; 0 reads again at once.
        public var lingerMs = 10
        /// The lag gauge is refreshed at most this often while batches flow (always when
        /// the log goes quiet): reading it is two more Redis round trips.
        public var lagRefreshMs = 250
        /// Attempts at a failing event before it is parked.
        public var poisonAttempts = 3
        /// First retry delay; it doubles on each attempt (capped at 5 s for outages).
        public var retryDelay: Duration = .milliseconds(50)
        /// The defaults; change single fields afterwards (`var options = Options(); options.lingerMs = 0`).
        public init() {}
    }

    /// The projector fed; its `name` names the consumer group, the leases and the dead-letter stream.
    public let projector: any Projector
    let log: EventLog
    let scheduler: PriorityScheduler
    let lag: ProjectionLag
    let options: Options
    let consumer: String
    let logger: Logger

    /// `consumer` names this process in the consumer groups and as lease owner (unique per process by default); `lag`
    /// receives the runner's measurements.
    public init(
        _ projector: any Projector, log: EventLog, scheduler: PriorityScheduler, lag: ProjectionLag,
        options: Options = Options(), consumer: String = ProjectorRunner.defaultConsumerName(), logger: Logger
    ) {
        self.projector = projector
        self.log = log
        self.scheduler = scheduler
        self.lag = lag
        self.options = options
        self.consumer = consumer
        self.logger = logger
    }

    /// `host-pid-random`: unique per process.
    public static func defaultConsumerName() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt16.random(in: 0...UInt16.max))"
    }

    /// Where events this projector cannot apply are parked.
    public var deadLetters: DeadLetters { log.deadLetters(projector.name) }

    /// The hold a shadow swap sets to stop this projector's writes for a moment.
    var hold: ProjectionHold { log.hold(projector.name) }

    /// How long a consumer of the group may be idle, with nothing pending, before a new
    /// holder deletes it (each process joins the group under a name of its own).
    static let idleConsumerMs = 3_600_000

    /// Runs until cancelled or until graceful shutdown (SIGTERM): the batch in hand is
    /// applied and acknowledged, the leases are released, then it returns.
    public func run() async throws {
        do {
            try await runUntilShutdown()
        } catch is CancellationError {
            // Stopped (SIGTERM) while preparing, before any batch: a clean stop, not a failure.
        }
    }

    private func runUntilShutdown() async throws {
        try await cancelWhenGracefulShutdown {
            try await projector.prepare()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for partition in 0..<log.partitioning.count {
                    group.addTask { try await self.runPartition(partition) }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Projects one partition until the task is cancelled (graceful shutdown finishes the
    /// batch in hand: it is applied and acknowledged before the loop looks again).
    func runPartition(_ partition: Int) async throws {
        let group = log.consumerGroup(projector.name, partition: partition, consumer: consumer)
        let lease = log.lease(projector.name, partition: partition, owner: consumer, ttl: options.lease)
        var held = false
        while !Task.isCancelled {
            do {
                guard let epoch = try await lease.take() else {
                    try await Task.sleep(for: options.lease / 3)
                    continue
                }
                held = true
                // The lease is renewed all along, also while a batch waits out a store
                // outage; losing it stops the work at once.
                try await PartitionLease.renewing([lease]) {
                    try await self.project(partition, group: group, lease: lease, epoch: epoch)
                }
            } catch is CancellationError {
                break
            } catch let lost as PartitionLease.Lost {
                logger.warning("projector lost its lease", metadata: ["projector": "\(projector.name)", "lease": "\(lost.key)"])
            } catch let fenced as ProjectionFenced {
                // A newer holder wrote: if the lease is still ours, the epoch counter is
                // behind the read model (Redis lost it); raise it and go on, else stop.
                logger.warning("projector was fenced off", metadata: ["projector": "\(projector.name)", "fence": "\(fenced)"])
                _ = try? await lease.raiseEpoch(above: fenced.seen)
            } catch let error as DriverError where error.isTransient {
                logger.warning("projector waits for the store", metadata: ["projector": "\(projector.name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            } catch {
                logger.error("projector loop failed", metadata: ["projector": "\(projector.name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        if held { try? await lease.release() }
    }

    /// Projects the partition while holding its lease at `epoch`: fences the read model first (from then on a former
    /// holder's writes are refused), takes over what other consumers left pending, then reads and applies until
    /// cancelled.
    private func project(_ partition: Int, group: ConsumerGroup, lease: PartitionLease, epoch: Int64) async throws {
        try await projector.fence(partition: partition, epoch: epoch)
        try await waitWhileTheLogIsBehind(partition)
        try await group.create()
        try await rereadWhatTheReadModelLost(group)
        try await catchUpFromTheArchive(partition, epoch: epoch)
        try await group.claimAll(batch: options.batchSize)
        try await group.deleteIdleConsumers(idleMs: Self.idleConsumerMs)
        var applied = "0-0"
        while !Task.isCancelled {
            try await hold.waitWhileHeld(partition: partition, consumer: consumer) { _ = try await lease.acquire() }
            try await drain(group, selection: .pending, block: nil, epoch: epoch, applied: &applied)  // our pending entries first
            try await drain(group, selection: .new, block: options.blockMs, epoch: epoch, applied: &applied)
            try await updateLag(group)
            // Redis may have come back from an older snapshot under us: checked before each batch of new entries and
            // when the log goes quiet.
            if try await log.reader.lacks(partition: partition, entryID: applied) {
                try await waitWhileTheLogIsBehind(partition)
                applied = try await projector.checkpoint(partition: partition)
            }
        }
    }

    /// A read model whose checkpoint entry is not in the log means Redis lost its newest entries (restored from an older
    /// snapshot or AOF; new entries appended since do not bring them back): the
    /// rooms' sequence numbers and guards went back with it, so new events would reuse numbers the read model already
    /// has. Nothing is projected into this partition and nothing appended to it meanwhile (`EventLog.LostEntries`, 503):
    /// `/readyz` fails, `parley_log_lost_tail` is 1, and an error is logged every minute until the operator restores the lost entries or rebuilds the read model from the log
    /// as it is (`docs/operations.md`).
    private func waitWhileTheLogIsBehind(_ partition: Int) async throws {
        var logged = ContinuousClock.now - .seconds(3600)
        let gauge = Gauge(label: "parley.log.lost_tail", dimensions: [("projector", projector.name), ("partition", "\(partition)")])
        while !Task.isCancelled {
            let applied = try await projector.checkpoint(partition: partition)
            guard try await log.reader.lacks(partition: partition, entryID: applied) else {
                lag.setLostTail(projector.name, partition: partition, nil)
                gauge.record(0)
                try await log.clearLostEntries(partition: partition, projector: projector.name)
                return
            }
            let ends = try await log.reader.lastGenerated(partition: partition)
            let lost = ProjectionLag.LostTail(projector: projector.name, partition: partition, applied: applied, logEnds: ends)
            lag.setLostTail(projector.name, partition: partition, lost)
            gauge.record(1)
            // Appends to the partition are refused meanwhile: they would reuse the lost events' sequence numbers.
            try await log.reportLostEntries(partition: partition, projector: projector.name, detail: "\(lost)")
            if ContinuousClock.now - logged > .seconds(60) {
                logger.error("the log lost entries its read model has: projection and appends stopped", metadata: ["lost": "\(lost)"])
                logged = .now
            }
            // Nothing is written here: a shadow swap (the operator accepting the loss) may go on at once. The refusal is
            // kept up meanwhile.
            try await hold.waitWhileHeld(partition: partition, consumer: consumer) {
                try await log.reportLostEntries(partition: partition, projector: projector.name, detail: "\(lost)")
            }
            try await Task.sleep(for: .seconds(2))
        }
    }

    /// The mirror of a log that lost its tail: a read model that lost its newest writes while the log and the group
    /// kept them (restored from a backup, a MongoDB rolled back after a failover, nx-27017 stopped uncleanly: seen). The
    /// group had acknowledged those entries and would never hand them out again, so the read model would stay short of
    /// the log for good. At each takeover the checkpoint is compared with what the group acknowledged; entries past it
    /// that were acknowledged (and not parked as dead letters) make the group read again from the checkpoint, logged as
    /// an error and counted (`parley_projector_rewound`). Applying twice is harmless: every projector is idempotent.
    private func rereadWhatTheReadModelLost(_ group: ConsumerGroup) async throws {
        let checkpoint = try await projector.checkpoint(partition: group.partition)
        let acknowledged = try await group.acknowledgedAfter(checkpoint)
        guard !acknowledged.isEmpty else { return }
        let parked = try await deadLetters.recentEntryIDs(partition: group.partition)
        let lost = acknowledged.filter { !parked.contains($0) }
        guard let first = lost.first else { return }
        try await group.rewind(to: checkpoint)
        Counter(label: "parley.projector.rewound", dimensions: [("projector", projector.name)]).increment()
        logger.error(
            "the read model lacks events its consumer group had acknowledged: reading them again from its checkpoint",
            metadata: [
                "projector": "\(projector.name)", "partition": "\(group.partition)", "checkpoint": "\(checkpoint)",
                "firstLost": "\(first)",
            ])
    }

    /// Reads and applies batches until one comes back empty (or, for new entries, the block
    /// times out, or another consumer turns out to hold entries older than ours).
    private func drain(
        _ group: ConsumerGroup, selection: ConsumerGroup.Selection, block: Int?, epoch: Int64, applied: inout String
    ) async throws {
        var lagUpdated = ContinuousClock.now - .seconds(3600)
        while !Task.isCancelled {
            let entries = try await group.read(selection, count: options.batchSize, blockMs: block)
            if entries.isEmpty { return }
            if selection == .new, try await group.othersHavePending() {
                // A former holder read entries for a moment after it lost the lease: they come before these. Take them
                // and apply everything pending in log order.
                try await group.claimAll(batch: options.batchSize)
                return
            }
            if selection == .new, try await log.reader.lacks(partition: group.partition, entryID: applied) {
                // Redis lost entries under a steady stream (a failover to a replica that was behind): the check when the
                // log goes quiet would come too late, once a new entry became the checkpoint. These stay pending.
                return
            }
            try await process(entries, partition: group.partition, epoch: epoch)
            try await group.acknowledge(entries.map(\.id))
            if let last = entries.last?.id, StreamID.less(applied, last) { applied = last }
            guard block != nil else { continue }
            if ContinuousClock.now - lagUpdated >= .milliseconds(options.lagRefreshMs) {
                try await updateLag(group)
                lagUpdated = .now
            }
            if entries.count < options.batchSize, options.lingerMs > 0 { try await Task.sleep(for: .milliseconds(options.lingerMs)) }
        }
    }

    /// Decodes a batch, parks what cannot be read, and applies the rest.
    func process(_ entries: [StreamEntry], partition: Int, epoch: Int64 = 0) async throws {
        var events: [LoggedEvent] = []
        for entry in entries {
            do {
                events.append(try EventLog.decode(entry, partition: partition))
            } catch {
                try await apply(events, partition: partition, epoch: epoch)
                events = []
                try await park(entryID: entry.id, json: entry["event"] ?? "", partition: partition, error: "\(error)")
            }
        }
        try await apply(events, partition: partition, epoch: epoch)
    }

    /// A read model behind the stream's oldest entry (a new projector, a new read-model name, a group created again
    /// after its stream was trimmed) first reads what the archiver copied out of the stream: the consumer group can only
    /// hand out what the stream still holds.
    private func catchUpFromTheArchive(_ partition: Int, epoch: Int64) async throws {
        guard let archive = log.reader.archive else { return }
        var applied = try await projector.checkpoint(partition: partition)
        let oldest = try await log.reader.oldest(partition: partition)
        guard oldest != "0-0", StreamID.less(applied, oldest) else { return }
        while !Task.isCancelled {
            let entries = try await archive.entries(
                partition: partition, after: applied, before: oldest, until: "+", count: options.batchSize)
            guard let last = entries.last else { return }
            try await process(entries, partition: partition, epoch: epoch)
            applied = last.id
        }
    }

    /// Applies with retries: a store outage is waited out; any other failure of a batch
    /// is narrowed down event by event, and an event that keeps failing is parked.
    func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64 = 0) async throws {
        guard !events.isEmpty else { return }
        // A shadow swap may be under way: apply nothing until it is done (the batch stays
        // unacknowledged meanwhile, and lands in the swapped-in read model).
        let lease = log.lease(projector.name, partition: partition, owner: consumer, ttl: options.lease)
        try await hold.waitWhileHeld(partition: partition, consumer: consumer) { _ = try await lease.acquire() }
        var attempt = 0
        var delay = options.retryDelay
        while true {
            do {
                try await scheduler.run(projector.priority, label: "\(projector.name):\(partition)", group: projector.name) {
                    try await projector.apply(events, partition: partition, epoch: epoch)
                }
                return
            } catch let fenced as ProjectionFenced {
                throw fenced  // not the events' fault: the lease is gone
            } catch let error as DriverError where error.isTransient {
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            } catch {
                if events.count > 1 {
                    for event in events { try await apply([event], partition: partition, epoch: epoch) }
                    return
                }
                attempt += 1
                if attempt >= options.poisonAttempts {
                    try await park(entryID: events[0].entryID, json: events[0].json, partition: partition, error: "\(error)")
                    return
                }
                try await Task.sleep(for: delay)
                delay = delay * 4
            }
        }
    }

    private func park(entryID: String, json: String, partition: Int, error: String) async throws {
        try await deadLetters.park(partition: partition, entryID: entryID, json: json, error: error)
        Counter(label: "parley.projector.dead_letters", dimensions: [("projector", projector.name)]).increment()
        logger.error(
            "event parked in the dead-letter stream",
            metadata: ["projector": "\(projector.name)", "partition": "\(partition)", "entry": "\(entryID)", "error": "\(error)"])
    }

    /// Records how far this projector is behind in the group's partition.
    func updateLag(_ group: ConsumerGroup) async throws {
        guard let behind = try await group.lag() else { return }
        let partition = group.partition
        lag.set(projector.name, partition: partition, .init(events: behind.events, milliseconds: behind.milliseconds))
        Gauge(label: "parley.projector.lag.events", dimensions: [("projector", projector.name), ("partition", "\(partition)")])
            .record(behind.events)
        Gauge(label: "parley.projector.lag.ms", dimensions: [("projector", projector.name), ("partition", "\(partition)")])
            .record(behind.milliseconds)
    }
}
