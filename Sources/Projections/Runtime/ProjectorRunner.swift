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
/// One consumer per partition at a time: a lease key (`SET NX PX`, renewed) lets one
/// server instance project a partition, which keeps events in log order even with several
/// instances; when a holder dies its lease expires, another instance takes over and first
/// claims (XAUTOCLAIM) and applies what the dead one had read but not acknowledged.
///
/// An event that fails for a reason other than a store outage is retried with backoff,
/// then parked in the dead-letter stream `<ns>:dead:<projector>` with its error, counted
/// (`parley.projector.dead_letters`) and logged once; the projector goes on with the next.
public struct ProjectorRunner: Service {
    public struct Options: Sendable {
        public var batchSize = 1000
        public var blockMs = 1000
        public var leaseMs = 10_000
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
        public init() {}
    }

    public let projector: any Projector
    let log: EventLog
    let scheduler: PriorityScheduler
    let lag: ProjectionLag
    let options: Options
    let consumer: String
    let logger: Logger

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

    public var deadLetterKey: String { "\(log.partitioning.namespace):dead:\(projector.name)" }

    /// The hold a shadow swap sets to stop this projector's writes for a moment.
    var hold: ProjectionHold { ProjectionHold(redis: log.redis, namespace: log.partitioning.namespace, projector: projector.name) }

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
        let stream = log.partitioning.streamKey(partition)
        let leaseKey = hold.leaseKey(partition)
        var holding = false
        var groupReady = false
        while !Task.isCancelled {
            do {
                if !groupReady {
                    try await log.redis.xgroupCreate(stream, group: projector.name, startID: "0")
                    groupReady = true
                }
                let held = try await renewLease(leaseKey, holding: holding)
                if !held {
                    holding = false
                    try await Task.sleep(for: .milliseconds(options.leaseMs / 3))
                    continue
                }
                try await hold.waitWhileHeld(partition: partition, consumer: consumer) {
                    _ = try await self.renewLease(leaseKey, holding: true)
                }
                if !holding {
                    // Just took the partition over: whatever another consumer read and did
                    // not acknowledge is ours now, and comes before anything new.
                    holding = true
                    try await claimAll(stream)
                }
                try await drain(partition, stream: stream, from: "0", block: nil)  // our pending entries first
                try await drain(partition, stream: stream, from: ">", block: options.blockMs)
                try await updateLag(partition, stream: stream)
            } catch is CancellationError {
                break
            } catch let error as DriverError where error.isTransient {
                logger.warning("projector waits for the store", metadata: ["projector": "\(projector.name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            } catch let error as DriverError where error.code == .server && error.message.hasPrefix("NOGROUP") {
                groupReady = false
            } catch {
                logger.error("projector loop failed", metadata: ["projector": "\(projector.name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        if holding { _ = try? await log.redis.command(["DEL", leaseKey]) }
    }

    /// Takes or keeps the partition's lease; false when another consumer holds it.
    private func renewLease(_ key: String, holding: Bool) async throws -> Bool {
        let ms = String(options.leaseMs)
        let taken = try await log.redis.command(["SET", key, consumer, "NX", "PX", ms])
        if taken.string == "OK" { return true }
        let owner = try await log.redis.command(["GET", key]).string
        if owner == consumer {
            try await log.redis.command(["PEXPIRE", key, ms])
            return true
        }
        return false
    }

    private func claimAll(_ stream: String) async throws {
        var start = "0-0"
        repeat {
            let claimed = try await log.redis.xautoclaim(
                stream, group: projector.name, consumer: consumer, minIdleMs: 0, start: start, count: options.batchSize)
            start = claimed.next
        } while start != "0-0"
    }

    /// Reads and applies batches until one comes back empty (or, for `>`, the block times out).
    private func drain(_ partition: Int, stream: String, from start: String, block: Int?) async throws {
        var lagUpdated = ContinuousClock.now - .seconds(3600)
        while !Task.isCancelled {
            let batches = try await log.redis.xreadgroup(
                group: projector.name, consumer: consumer, [(stream, start)], count: options.batchSize, blockMs: block)
            let entries = batches.first?.entries ?? []
            if entries.isEmpty { return }
            try await process(entries, partition: partition)
            try await log.redis.xack(stream, group: projector.name, ids: entries.map(\.id))
            guard block != nil else { continue }
            if ContinuousClock.now - lagUpdated >= .milliseconds(options.lagRefreshMs) {
                try await updateLag(partition, stream: stream)
                lagUpdated = .now
            }
            if entries.count < options.batchSize, options.lingerMs > 0 { try await Task.sleep(for: .milliseconds(options.lingerMs)) }
        }
    }

    /// Decodes a batch, parks what cannot be read, and applies the rest.
    func process(_ entries: [StreamEntry], partition: Int) async throws {
        var events: [LoggedEvent] = []
        for entry in entries {
            do {
                events.append(try EventLog.decode(entry, partition: partition))
            } catch {
                try await apply(events, partition: partition)
                events = []
                try await park(entryID: entry.id, json: entry["event"] ?? "", partition: partition, error: "\(error)")
            }
        }
        try await apply(events, partition: partition)
    }

    /// Applies with retries: a store outage is waited out; any other failure of a batch
    /// is narrowed down event by event, and an event that keeps failing is parked.
    func apply(_ events: [LoggedEvent], partition: Int) async throws {
        guard !events.isEmpty else { return }
        // A shadow swap may be under way: apply nothing until it is done (the batch stays
        // unacknowledged meanwhile, and lands in the swapped-in read model).
        try await hold.waitWhileHeld(partition: partition, consumer: consumer) {
            _ = try await self.renewLease(self.hold.leaseKey(partition), holding: true)
        }
        var attempt = 0
        var delay = options.retryDelay
        while true {
            do {
                try await scheduler.run(projector.priority, label: "\(projector.name):\(partition)", group: projector.name) {
                    try await projector.apply(events, partition: partition)
                }
                return
            } catch let error as DriverError where error.isTransient {
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            } catch {
                if events.count > 1 {
                    for event in events { try await apply([event], partition: partition) }
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
        _ = try await log.redis.xadd(
            deadLetterKey,
            fields: [("partition", String(partition)), ("entryId", entryID), ("event", json), ("error", error),
                     ("at", formatTimestamp(Date()))])
        Counter(label: "parley.projector.dead_letters", dimensions: [("projector", projector.name)]).increment()
        logger.error(
            "event parked in the dead-letter stream",
            metadata: ["projector": "\(projector.name)", "partition": "\(partition)", "entry": "\(entryID)", "error": "\(error)"])
    }

    /// Records how far this projector is behind in `partition`.
    func updateLag(_ partition: Int, stream: String) async throws {
        let groups = try await log.redis.xinfoGroups(stream)
        guard let group = groups.first(where: { $0["name"]?.string == projector.name }) else { return }
        let delivered = group["last-delivered-id"]?.string ?? "0-0"
        let head = try await log.head(partition: partition)
        // Redis' own `lag` (entries added minus entries read) counts only while the group has
        // not read up to the head: it was seen 20 behind with nothing left to read, after AOF
        // rewrites and restarts of the development Redis.
        let unread = head == delivered ? 0 : Int(group["lag"]?.int ?? 0)
        let events = unread + Int(group["pending"]?.int ?? 0)
        let milliseconds = max(0, (StreamID.milliseconds(head) ?? 0) - (StreamID.milliseconds(delivered) ?? 0))
        lag.set(projector.name, partition: partition, .init(events: events, milliseconds: milliseconds))
        Gauge(label: "parley.projector.lag.events", dimensions: [("projector", projector.name), ("partition", "\(partition)")])
            .record(events)
        Gauge(label: "parley.projector.lag.ms", dimensions: [("projector", projector.name), ("partition", "\(partition)")])
            .record(milliseconds)
    }
}
