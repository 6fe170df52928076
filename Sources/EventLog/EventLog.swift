import Drivers
import Events
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// The event log on Redis streams: decides commands against the guard state kept beside
/// the log and appends their events atomically, reads ranges, tails the live end and
/// checks the hash chain.
///
/// It is the only owner of Redis: whatever else Parley keeps there (consumer groups,
/// leases, dead letters, holds, pub/sub) is reached through the types it hands out
/// (`consumerGroup`, `lease`, `deadLetters`, `hold`, `reader`, `signals`), each naming its
/// keys through `Keys`. As a `Service` it stops its append writers at shutdown.
public final class EventLog: Service, Sendable {
    /// A failure of the log itself (not a rule refusal, which is a `RuleError`).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// What went wrong, in one line for the operator.
        public let description: String
    }

    /// An append refused because a projector found that the partition's stream lost entries a read model holds (Redis
    /// came back from an older snapshot): new events would reuse sequence numbers history already shows. Refused until an
    /// operator restores the entries or rebuilds the read models from the log as it is (`docs/operations.md`).
    public struct LostEntries: Error, CustomStringConvertible, Sendable {
        /// The partition whose appends are refused.
        public let partition: Int
        /// What the projectors found (where each read model is, where the log ends).
        public let detail: String
        public var description: String {
            "partition \(partition) of the log lost entries its read models hold (\(detail)): appends are refused until it is reconciled"
        }
    }

    /// Records that `projector` found partition `partition`'s read model ahead of its stream: appends there are refused
    /// for `ttlMs` unless this is called again (a projector that stops looking does not block appends for long).
    public func reportLostEntries(partition: Int, projector: String, detail: String, ttlMs: Int = 30_000) async throws {
        _ = try await Self.reportLostScript.run(
            redis, keys: [keys.guards(partition).lostEntries], arguments: [projector, detail, String(ttlMs)]
        ).orThrow()
    }

    /// HSET and PEXPIRE in one step: the flag never exists without its expiry.
    static let reportLostScript = RedisScript(
        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); return redis.call('PEXPIRE', KEYS[1], ARGV[3])")

    /// `projector` finds its read model within the stream again: its part of the refusal ends.
    public func clearLostEntries(partition: Int, projector: String) async throws {
        try await redis.command(["HDEL", keys.guards(partition).lostEntries, projector]).orThrow()
    }

    let redis: RedisClient
    /// How rooms map to partitions: the same count every reader and writer of the log must use.
    public let partitioning: Partitioning
    /// Every key and channel name of this log's namespace.
    public let keys: Keys
    /// Pages through the log.
    public let reader: LogReader
    /// How long a `clientMsgId` is remembered (`PARLEY_DEDUPE_SECONDS`).
    public let dedupe: DedupeWindow
    /// The largest message body the rules accept, in UTF-8 bytes (`PARLEY_MAX_MESSAGE_BYTES`).
    public let maxMessageBytes: Int
    /// How often a command is decided again when a fact it relied on changed under it.
    public let maxAttempts = 32
    let logger: Logger
    let sendStates = SendStateCache()
    /// How long the atomic append step takes (`parley.append.latency`).
    let appendTimer = Timer(label: "parley.append.latency")
    /// Appends of concurrent commands share pipelines (group commit).
    let appends: RedisBatcher

    /// A log over `redis` in `namespace`; `partitions` must be the count the log was written with (`checkPartitionCount`).
    /// `archive`: where the archiver copies entries before they are trimmed (nil: `PARLEY_ARCHIVE=off`, nothing is
    /// trimmed); every reader of the log reads it before the streams.
    public init(
        redis: RedisClient, partitions: Int, namespace: String = "parley", maxMessageBytes: Int = 4000,
        archive: LogArchive? = nil, dedupe: DedupeWindow = DedupeWindow(seconds: 604_800), logger: Logger = Logger(label: "parley.log")
    ) {
        self.dedupe = dedupe
        self.redis = redis
        self.partitioning = Partitioning(count: partitions)
        self.keys = Keys(namespace: namespace, tags: .of(redis, partitions: partitions))
        self.reader = LogReader(redis: redis, keys: keys, partitions: partitions, archive: archive)
        self.maxMessageBytes = maxMessageBytes
        self.logger = logger
        self.appends = RedisBatcher(client: redis)
    }

    /// What an accepted command did.
    public struct Outcome: Sendable {
        /// The events appended (empty when the command changed nothing).
        public var events: [LoggedEvent]
        /// True when the command was a repeated send: `events` holds the first one's message.
        public var duplicate: Bool
    }

    /// Decides `command` for `actor` against the current state and appends its events in
    /// one atomic step. Throws `RuleError` for a refusal (nothing is appended).
    @discardableResult
    public func execute(_ command: Command, actor: String, now: Date = Date(), newID: (@Sendable () -> String)? = nil) async throws
        -> Outcome
    {
        let roomId = command.roomId(actor: actor)
        let partition = roomId.map(partitioning.partition(ofRoom:)) ?? partitioning.userPartition
        let keys = guardKeys(partition)
        let context = DecisionContext(
            actorId: actor, now: millisecondPrecision(now), maxMessageBytes: maxMessageBytes, newID: newID ?? Events.newID)
        let cacheKey = SendStateCache.key(command, actor: actor)
        var cached = cacheKey.flatMap(sendStates.get)
        for _ in 0..<maxAttempts {
            let state: DecisionState
            if let hit = cached { state = hit } else { state = try await loadState(for: command, actor: actor, keys: keys) }
            let decision: Decision
            do {
                decision = try Rules.decide(command, state, context)
            } catch {
                // Decided on cached state: decide again on fresh state before refusing.
                guard cached == nil else {
                    cached = nil
                    continue
                }
                throw error
            }
            guard !decision.events.isEmpty else { return Outcome(events: [], duplicate: false) }
            let request = try AppendRequest(decision: decision, state: state, keys: keys, dedupe: dedupe)
            let started = ContinuousClock.now
            let reply = try await appends.run(appendScript, keys: request.keys, arguments: request.arguments)
            let took = ContinuousClock.now - started
            appendTimer.recordNanoseconds(took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
            switch try request.parse(reply, partition: partition) {
            case .appended(let events):
                if let cacheKey { sendStates.put(cacheKey, state: state, room: request.roomAfter) }
                return Outcome(events: events, duplicate: false)
            case .duplicate(let event):
                return Outcome(events: [event], duplicate: true)
            case .duplicateTrimmed(let entryID):
                guard let event = try await reader.archive?.event(partition: partition, entryID: entryID) else {
                    throw Failure(description: "a repeated send's first message (\(entryID)) is neither in the stream nor in the archive")
                }
                return Outcome(events: [event], duplicate: true)
            case .conflict:
                // A fact changed since it was read: read again and decide again.
                if let cacheKey { sendStates.remove(cacheKey) }
                cached = nil
            }
        }
        throw Failure(description: "\(command) kept conflicting with concurrent changes after \(maxAttempts) attempts")
    }

    // MARK: - Lifecycle

    /// Waits for graceful shutdown, then stops the append writers (once the appends
    /// already queued are sent). The Redis client is the caller's.
    public func run() async throws {
        try? await gracefulShutdown()
        shutdown()
    }

    /// Stops the append writers (their threads and connections) at once.
    public func shutdown() {
        appends.shutdown()
    }

    // MARK: - Reading

    /// The events of a partition after `entryID` (exclusive), oldest first; an entry that
    /// cannot be decoded is an error here (see `reader` for pages that report them instead).
    public func read(partition: Int, after entryID: String = "0-0", count: Int = 1000) async throws -> [LoggedEvent] {
        let page = try await reader.page(partition: partition, after: entryID, count: count)
        if let bad = page.unreadable.first { throw Failure(description: "entry \(bad.entryID) of partition \(partition): \(bad.reason)") }
        return page.events
    }

    /// Every partition's events after `position`, at most `count` per partition, merged by
    /// entry id (events of one room keep their order: a room lives in one partition).
    public func read(after position: LogPosition, count: Int = 1000) async throws -> [LoggedEvent] {
        try await reader.merged(after: position, count: count).events
    }

    /// The partitions one `tail` call may wait on together: all of them on one Redis (one XREAD BLOCK over every
    /// stream), each alone on a cluster (a command's keys must share a slot). A live reader runs one loop per group.
    public var tailGroups: [[Int]] {
        let all = Array(0..<partitioning.count)
        return redis.isCluster ? all.map { [$0] } : [all]
    }

    /// Waits up to `blockMs` for entries after `position` in any of `partitions` (every partition unless given; one
    /// XREAD BLOCK over their streams, so on a cluster one group of `tailGroups`) and returns their events and the
    /// position after the last entry read. An entry that cannot be decoded is passed over (and reported), so that
    /// one bad entry never stops a live reader.
    public func tail(after position: LogPosition, partitions: [Int]? = nil, count: Int = 1000, blockMs: Int = 1000) async throws
        -> LogReader.MergedPage
    {
        let chosen = partitions ?? Array(0..<partitioning.count)
        let streams = chosen.map { (key: keys.stream($0), after: position.entryIDs[$0]) }
        let batches = try await redis.xread(streams, count: count, blockMs: blockMs)
        let pages = batches.compactMap { batch in
            streams.firstIndex { $0.key == batch.key }.map { LogReader.decode(batch.entries, partition: chosen[$0], cache: .shared) }
        }
        return LogReader.MergedPage(pages, after: position)
    }

    /// The position of the last event of every partition now.
    public func head() async throws -> LogPosition { try await reader.head() }

    // MARK: - What lives beside the log

    /// The consumer `consumer` of projector `name`'s group on `partition`.
    public func consumerGroup(_ name: String, partition: Int, consumer: String) -> ConsumerGroup {
        ConsumerGroup(redis: redis, keys: keys, name: name, partition: partition, consumer: consumer)
    }

    /// The lease on `partition` for projector `projector`, as `owner` would hold it.
    public func lease(_ projector: String, partition: Int, owner: String, ttl: Duration = PartitionLease.ttl) -> PartitionLease {
        PartitionLease(
            redis: redis, key: keys.lease(projector, partition: partition), epochKey: keys.leaseEpoch(projector, partition: partition),
            owner: owner, ttl: ttl)
    }

    /// Projector `projector`'s dead-letter stream.
    public func deadLetters(_ projector: String) -> DeadLetters {
        DeadLetters(redis: redis, key: keys.deadLetters(projector), projector: projector)
    }

    /// The hold a shadow swap puts on projector `projector`'s live writes.
    public func hold(_ projector: String) -> ProjectionHold {
        ProjectionHold(redis: redis, keys: keys, projector: projector)
    }

    /// The marker of an in-place rebuild of projector `projector` under way.
    public func rebuildMarker(_ projector: String) -> RebuildMarker {
        RebuildMarker(redis: redis, key: keys.rebuildMarker(projector))
    }

    /// Typing signals shared by every instance; `onTyping` gets those of every instance
    /// while the returned service runs.
    public func signals(logger: Logger, onTyping: @escaping @Sendable (_ roomId: String, _ userId: String) -> Void) -> EphemeralSignals {
        EphemeralSignals(redis: redis, keys: keys, logger: logger, onTyping: onTyping)
    }

    /// The guard keys of a partition, in this log's namespace.
    func guardKeys(_ partition: Int) -> GuardKeys { keys.guards(partition) }

    /// Decodes a stream entry. `cache`: the process's recently decoded events, for the live
    /// readers that see the same entries one after the other (the hub's tail, the
    /// projectors); nil for a pass over older events (rebuilds, audits, replays after
    /// `since`), which would only push the live ones out.
    public static func decode(_ entry: StreamEntry, partition: Int, cache: DecodedEvents? = .shared) throws -> LoggedEvent {
        guard let json = entry["event"] else {
            throw Failure(description: "entry \(entry.id) of partition \(partition) has no event field")
        }
        let event = try cache.map { try $0.event(entryID: entry.id, json: json) } ?? EventCodec.decode(json)
        return LoggedEvent(partition: partition, entryID: entry.id, event: event, json: json)
    }
}
