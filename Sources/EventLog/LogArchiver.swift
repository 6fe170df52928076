import Drivers
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// The archiver role: copies every partition's entries, in order and as stored (their
/// hashes included), into the archive, and trims from each stream what is safe to drop,
/// so that Redis holds only the hot end of the log.
///
/// An entry is trimmed only once all three hold:
/// - it is archived;
/// - every consumer group of the stream has acknowledged it (each projector, including one
///   that is behind or stopped; a group that never read blocks trimming until it does);
/// - it is older than `hotSeconds` (`PARLEY_LOG_HOT_SECONDS`).
///
/// `XTRIM MINID` keeps the bound's own entry, so a stream that was ever archived keeps at
/// least its last entry (the log's head and the lost-entries check need one).
///
/// Before each trim, the records of messages whose last change is trimmed leave the guard
/// state (`msgs:<room>` in Redis), each only if Redis still holds the archived value (a
/// change not archived yet keeps it there, and moves it to a later eviction). The room's
/// `ev` counts its evictions: an append that read a record from the archive checks that
/// none happened since. So Redis holds the records of the hot window's messages only.
///
/// One archiver per partition at a time (a lease, `<ns>:lease:archiver:<p>`); two at once
/// would only copy the same rows twice, which the archive ignores, so the lease needs no
/// fencing. A copy that failed (PostgreSQL away) is retried every second; trimming waits for it.
public struct LogArchiver: Service {
    /// How much is copied at once, how long entries stay hot, and how often streams are trimmed.
    public struct Options: Sendable {
        /// Entries copied per round trip.
        public var batch = 1000
        /// How long an entry stays in its stream after it is archived and acknowledged (`PARLEY_LOG_HOT_SECONDS`).
        public var hotSeconds = 604_800
        /// How often each stream is trimmed.
        public var trimEvery: Duration = .seconds(10)
        /// How long to wait when there is nothing new to copy.
        public var idle: Duration = .seconds(1)
        /// The lease on each partition.
        public var lease = PartitionLease.ttl
        /// The defaults: 1000 entries a copy, a week hot, a trim every 10 s.
        public init() {}
    }

    /// The lease name and metrics label.
    public static let name = "archiver"

    let log: EventLog
    let archive: LogArchive
    let options: Options
    let consumer: String
    let logger: Logger
    private let archived = Counter(label: "parley.archive.entries")
    private let trimmed = Counter(label: "parley.archive.trimmed")
    private let evictedFacts = Counter(label: "parley.archive.evicted_facts")

    /// An archiver of `log` into `archive`, holding leases as `consumer`.
    public init(log: EventLog, archive: LogArchive, options: Options = Options(), consumer: String, logger: Logger) {
        self.log = log
        self.archive = archive
        self.options = options
        self.consumer = consumer
        self.logger = logger
    }

    /// Archives and trims every partition until graceful shutdown.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await archive.prepare()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for partition in 0..<log.partitioning.count { group.addTask { try await self.runPartition(partition) } }
                    try await group.waitForAll()
                }
            }
        } catch is CancellationError {}
    }

    private func runPartition(_ partition: Int) async throws {
        let lease = log.lease(Self.name, partition: partition, owner: consumer, ttl: options.lease)
        var reported = false
        while !Task.isCancelled {
            do {
                guard try await lease.take() != nil else {
                    try await Task.sleep(for: options.lease / 3)
                    continue
                }
                let clearFirst = reported
                try await PartitionLease.renewing([lease]) {
                    var reported = clearFirst
                    var lastTrim = ContinuousClock.now - options.trimEvery
                    while true {
                        let copied = try await archiveOnce(partition: partition)
                        if reported {
                            // Reconciled: this archiver's part of the refusal ends (one left by a process that died
                            // expires by itself).
                            try await log.clearLostEntries(partition: partition, projector: Self.name)
                            reported = false
                        }
                        if ContinuousClock.now - lastTrim >= options.trimEvery {
                            _ = try await trim(partition: partition, now: Date())
                            lastTrim = .now
                        }
                        if copied < options.batch { try await Task.sleep(for: options.idle) }
                    }
                }
            } catch is CancellationError {
                try? await lease.release()
                return
            } catch let ahead as AheadOfTheStream {
                reported = true
                logger.error("archiver stops: the stream lost entries", metadata: ["partition": "\(ahead.partition)", "error": "\(ahead)"])
                try? await Task.sleep(for: .seconds(1))
            } catch {
                logger.warning("archiver retries", metadata: ["partition": "\(partition)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// The archive holds entries of `partition` the stream lost: reported (appends there are refused meanwhile).
    public struct AheadOfTheStream: Error, CustomStringConvertible {
        /// The partition whose stream is behind the archive.
        public let partition: Int
        /// What was found, for the operator.
        public let description: String
    }

    /// Copies the next batch of `partition`'s entries after the last archived one; returns how many it copied.
    @discardableResult
    ///
    /// The last archived entry must still be in the stream unless it was trimmed: an archive ahead of the stream means
    /// Redis lost entries the archive holds (a failover to a replica that lacked them, an older snapshot). Then
    /// nothing is copied or trimmed, and appends to the partition are refused as when a read model is ahead
    /// (`EventLog.LostEntries`), until an operator reconciles it.
    public func archiveOnce(partition: Int) async throws -> Int {
        let through = try await archive.archivedThrough(partition: partition)
        if try await log.reader.lacks(partition: partition, entryID: through) {
            let detail = "the archive holds partition \(partition) up to \(through), which the stream does not have"
            try await log.reportLostEntries(partition: partition, projector: Self.name, detail: detail)
            throw AheadOfTheStream(partition: partition, description: detail)
        }
        let entries = try await log.redis.xrange(
            log.keys.stream(partition), from: through == "0-0" ? "-" : "(" + through, count: options.batch)
        try await archive.append(partition: partition, entries)
        archived.increment(by: entries.count)
        return entries.count
    }

    /// Trims what is safe to drop of `partition`'s stream at `now` (older than `hotSeconds`); returns how many entries
    /// it removed.
    @discardableResult
    public func trim(partition: Int, now: Date) async throws -> Int {
        let cutoff = Int64(now.timeIntervalSince1970 * 1000) - Int64(options.hotSeconds) * 1000
        return try await trim(partition: partition, before: "\(max(0, cutoff))-0")
    }

    /// Trims entries of `partition` older than `cutoff` that are archived and acknowledged by every consumer group.
    @discardableResult
    public func trim(partition: Int, before cutoff: String) async throws -> Int {
        let stream = log.keys.stream(partition)
        var bound = cutoff
        let archivedThrough = try await archive.archivedThrough(partition: partition)
        if StreamID.less(archivedThrough, bound) { bound = archivedThrough }
        var holding: [String] = []
        for (group, acknowledged) in try await acknowledgedByGroups(stream) where StreamID.less(acknowledged, bound) {
            bound = acknowledged
            holding.append(group)
        }
        let held = holding.last.flatMap { StreamID.less(bound, cutoff) && StreamID.less(bound, archivedThrough) ? $0 : nil }
        // 1 while a consumer group holds the partition's trim back (the log line names it), 0 otherwise.
        Gauge(label: "parley.archive.trim_held_back", dimensions: [("partition", String(partition))]).record(held == nil ? 0 : 1)
        if let group = held {
            // A stopped projector, or a group nobody reads any more, keeps the stream (and Redis) growing: say which.
            logger.warning(
                "a consumer group holds trimming back",
                metadata: ["partition": "\(partition)", "group": "\(group)", "acknowledged": "\(bound)"])
        }
        guard bound != "0-0" else { return 0 }
        try await evictFacts(partition: partition, before: bound)
        let removed = Int(try await log.redis.command(["XTRIM", stream, "MINID", bound]).int ?? 0)
        trimmed.increment(by: removed)
        return removed
    }

    /// Removes from the guard state the records of `partition`'s messages last changed before `bound` (archived, so an
    /// append finds them in the archive); returns how many left.
    @discardableResult
    func evictFacts(partition: Int, before bound: String) async throws -> Int {
        var through = try await archive.evictedThrough(partition: partition)
        var evicted = 0
        let keys = log.guardKeys(partition)
        while StreamID.less(through, bound) {
            let facts = try await archive.changedFacts(partition: partition, after: through, before: bound, count: options.batch)
            guard let last = facts.last else { break }
            var scriptKeys: [String] = []
            var arguments = [String(facts.count)]
            func index(_ key: String) -> String {
                if let i = scriptKeys.firstIndex(of: key) { return String(i + 1) }
                scriptKeys.append(key)
                return String(scriptKeys.count)
            }
            for fact in facts {
                arguments += [index(keys.messages(fact.roomId)), index(keys.room(fact.roomId)), fact.messageId, fact.record.encoded]
            }
            evicted += Int(try await evictScript.run(log.redis, keys: scriptKeys, arguments: arguments).orThrow().int ?? 0)
            through = last.entryID
            try await archive.setEvicted(partition: partition, through: through)
            if facts.count < options.batch { break }
        }
        evictedFacts.increment(by: evicted)
        return evicted
    }

    /// For each consumer group of `stream`, the entry below which it has acknowledged everything: its oldest pending
    /// entry, or the last it was handed when none is pending, whichever is older (a group rewound to a checkpoint reads
    /// again from there); "0-0" for a group that read nothing. None for a stream that does not exist yet.
    func acknowledgedByGroups(_ stream: String) async throws -> [(group: String, acknowledged: String)] {
        var bounds: [(group: String, acknowledged: String)] = []
        let groups: [[String: RedisValue]]
        do {
            groups = try await log.redis.xinfoGroups(stream)
        } catch let error as DriverError where error.code == .server && error.message.contains("no such key") {
            return []
        }
        for group in groups {
            guard let name = group["name"]?.string else { continue }
            let delivered = group["last-delivered-id"]?.string ?? "0-0"
            guard (group["pending"]?.int ?? 0) > 0 else {
                bounds.append((name, delivered))
                continue
            }
            let summary = try await log.redis.command(["XPENDING", stream, name]).orThrow().array ?? []
            let pending = summary.count > 1 ? summary[1].string ?? "0-0" : "0-0"
            bounds.append((name, StreamID.less(delivered, pending) ? delivered : pending))
        }
        return bounds
    }
}

/// Removes message records from a partition's guard state where they still hold the archived value, and counts an eviction
/// in each room that lost one (`ev`). KEYS: the guard keys, by index. ARGV: count, then per record: messagesKeyIndex,
/// roomKeyIndex, messageId, archived value. Returns how many left.
let evictScript = RedisScript(
    #"""
    local evicted, rooms, a = 0, {}, 2
    for _ = 1, tonumber(ARGV[1]) do
      local key, room, field, expected = KEYS[tonumber(ARGV[a])], KEYS[tonumber(ARGV[a + 1])], ARGV[a + 2], ARGV[a + 3]
      a = a + 4
      if redis.call('HGET', key, field) == expected then
        redis.call('HDEL', key, field)
        rooms[room] = true
        evicted = evicted + 1
      end
    end
    for room in pairs(rooms) do redis.call('HINCRBY', room, 'ev', 1) end
    return evicted
    """#)
