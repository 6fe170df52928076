import Drivers
import Events

/// A projector's Redis consumer group on one partition's stream, as one consumer of it
/// sees it: read what is new or what this consumer read and did not acknowledge, take
/// over what others left pending, acknowledge, and tell how far behind the group is. A
/// group that is missing (a new log, or a stream deleted and made again) is created on
/// the next read, from the start of the stream.
public struct ConsumerGroup: Sendable {
    let redis: RedisClient
    /// The group's name: the projector's.
    public let name: String
    /// The partition whose stream the group reads.
    public let partition: Int
    /// This process's consumer name in the group.
    public let consumer: String
    let stream: String

    init(redis: RedisClient, keys: Keys, name: String, partition: Int, consumer: String) {
        self.redis = redis
        self.name = name
        self.partition = partition
        self.consumer = consumer
        self.stream = keys.stream(partition)
    }

    /// Which entries a read returns.
    public enum Selection: Sendable {
        /// Entries no consumer of the group has read yet.
        case new
        /// Entries this consumer read and has not acknowledged (after a restart or a takeover).
        case pending
    }

    /// Creates the group (reading from the start of the stream) unless it exists.
    public func create() async throws {
        try await redis.xgroupCreate(stream, group: name, startID: "0")
    }

    /// Up to `count` entries; with `blockMs`, waits that long for new ones when there are none.
    public func read(_ selection: Selection, count: Int, blockMs: Int? = nil) async throws -> [StreamEntry] {
        let from = selection == .new ? ">" : "0"
        do {
            return try await readOnce(from: from, count: count, blockMs: blockMs)
        } catch let error as DriverError where error.redisErrorCode == "NOGROUP" {
            try await create()
            return try await readOnce(from: from, count: count, blockMs: blockMs)
        }
    }

    private func readOnce(from: String, count: Int, blockMs: Int?) async throws -> [StreamEntry] {
        // Confirmed by the replicas appends wait for: a projector never applies what a failover could take back.
        let batches = try await redis.xreadgroup(
            group: name, consumer: consumer, [(stream, from)], count: count, blockMs: blockMs, confirmed: true)
        return batches.first?.entries ?? []
    }

    /// Marks entries as applied: the group will not hand them out again.
    public func acknowledge(_ ids: [String]) async throws {
        try await redis.xack(stream, group: name, ids: ids)
    }

    /// Makes every entry pending with any consumer of the group this consumer's (after a
    /// takeover: what a dead holder read and did not apply comes before anything new).
    public func claimAll(batch: Int = 1000) async throws {
        var start = "0-0"
        repeat {
            start = try await redis.xautoclaim(stream, group: name, consumer: consumer, minIdleMs: 0, start: start, count: batch).next
        } while start != "0-0"
    }

    /// Whether a consumer other than this one has entries pending (`XPENDING`'s summary). A holder that lost its lease
    /// without knowing it may still read new entries for a moment; the new holder, seeing them pending with the old
    /// one after its own read, claims them so that the partition is still applied in log order.
    public func othersHavePending() async throws -> Bool {
        let reply = try await redis.command(["XPENDING", stream, name])
        guard let summary = reply.array, summary.count == 4 else { return false }
        return (summary[3].array ?? []).contains { pair in
            guard let fields = pair.array, fields.count == 2 else { return false }
            return fields[0].string != consumer && (fields[1].string.flatMap(Int64.init) ?? fields[1].int ?? 0) > 0
        }
    }

    /// Deletes the group's consumers, other than this one, that have nothing pending and
    /// have been idle longer than `idleMs`. Each process joins under a name of its own, so
    /// without this the group's consumer list grows by one with every restart, forever.
    /// A consumer with pending entries is kept: deleting it would drop them unapplied.
    @discardableResult
    public func deleteIdleConsumers(idleMs: Int) async throws -> Int {
        let reply = try await redis.command(["XINFO", "CONSUMERS", stream, name])
        var deleted = 0
        for consumer in reply.array ?? [] {
            let fields = try RedisClient.fieldMap(consumer)
            guard let other = fields["name"]?.string, other != self.consumer, fields["pending"]?.int == 0,
                let idle = fields["idle"]?.int, idle > idleMs
            else { continue }
            try await redis.command(["XGROUP", "DELCONSUMER", stream, name, other])
            deleted += 1
        }
        return deleted
    }

    /// Entries after `checkpoint` that the group handed out and that no consumer holds pending any more: acknowledged.
    /// Normally there are none (a batch is acknowledged after the read model recorded it); some means the read model
    /// lost writes it had confirmed (restored from a backup, a MongoDB rollback after a failover, a server stopped
    /// uncleanly). Looks at the first `probe` entries past the pending ones; at most three round trips.
    public func acknowledgedAfter(_ checkpoint: String, probe: Int = 100) async throws -> [String] {
        guard let group = try await redis.xinfoGroups(stream).first(where: { $0["name"]?.string == name }) else { return [] }
        let delivered = group["last-delivered-id"]?.string ?? "0-0"
        guard StreamID.less(checkpoint, delivered) else { return [] }
        let limit = Int(group["pending"]?.int ?? 0) + probe
        let after = "(" + checkpoint
        let handedOut = try await redis.xrange(stream, from: after, to: delivered, count: limit)
        let pending = try await redis.command(["XPENDING", stream, name, after, delivered, String(limit)]).orThrow()
        let held = Set((pending.array ?? []).compactMap { $0.array?.first?.string })
        return handedOut.map(\.id).filter { !held.contains($0) }
    }

    /// Makes the group hand out everything after `entryID` again (`XGROUP SETID`); what is pending stays pending.
    public func rewind(to entryID: String) async throws {
        try await redis.command(["XGROUP", "SETID", stream, name, entryID]).orThrow()
    }

    /// How far the group is behind the log in this partition.
    public struct Lag: Sendable, Equatable {
        /// Entries not yet acknowledged: never read, or read and not applied.
        public var events: Int
        /// Milliseconds between the newest entry and the last one handed out (0 when caught up).
        public var milliseconds: Int64
    }

    /// The group's lag; nil when the group does not exist.
    public func lag() async throws -> Lag? {
        let replies = try await redis.pipeline([["XINFO", "GROUPS", stream], ["XREVRANGE", stream, "+", "-", "COUNT", "1"]])
        let groups = try replies[0].orThrow().array ?? []
        guard let group = try groups.map(RedisClient.fieldMap).first(where: { $0["name"]?.string == name }) else { return nil }
        let head = LogReader.firstID(try replies[1].orThrow())
        let delivered = group["last-delivered-id"]?.string ?? "0-0"
        // Redis' own `lag` (entries added minus entries read) counts only while the group has
        // not read up to the head: it was seen 20 behind with nothing left to read, after AOF
        // rewrites and restarts of the development Redis.
        let unread = head == delivered ? 0 : Int(group["lag"]?.int ?? 0)
        return Lag(
            events: unread + Int(group["pending"]?.int ?? 0),
            milliseconds: max(0, (StreamID.milliseconds(head) ?? 0) - (StreamID.milliseconds(delivered) ?? 0)))
    }
}
