import Drivers
import Events
import Foundation
import Logging
import Metrics

/// The event log on Redis streams: decides commands against the guard state kept beside
/// the log and appends their events atomically, reads ranges, tails the live end and
/// checks the hash chain.
public final class EventLog: Sendable {
    /// A failure of the log itself (not a rule refusal, which is a `RuleError`).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let redis: RedisClient
    public let partitioning: Partitioning
    public let maxMessageBytes: Int
    /// How often a command is decided again when a fact it relied on changed under it.
    public let maxAttempts = 32
    let logger: Logger
    let sendStates = SendStateCache()
    /// How long the atomic append step takes (`parley.append.latency`).
    let appendTimer = Timer(label: "parley.append.latency")
    /// Appends of concurrent commands share pipelines (group commit).
    let appends: RedisBatcher

    public init(
        redis: RedisClient, partitions: Int, namespace: String = "parley", maxMessageBytes: Int = 4000,
        logger: Logger = Logger(label: "parley.log")
    ) {
        self.redis = redis
        self.partitioning = Partitioning(count: partitions, namespace: namespace)
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
            let request = try AppendRequest(decision: decision, state: state, keys: keys)
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
            case .conflict:
                // A fact changed since it was read: read again and decide again.
                if let cacheKey { sendStates.remove(cacheKey) }
                cached = nil
            }
        }
        throw Failure(description: "\(command) kept conflicting with concurrent changes after \(maxAttempts) attempts")
    }

    // MARK: - Reading

    /// Stops the append writers (their threads and connections); the Redis client is the caller's.
    public func shutdown() {
        appends.shutdown()
    }

    /// The events of a partition after `entryID` (exclusive), oldest first.
    public func read(partition: Int, after entryID: String = "0-0", count: Int = 1000) async throws -> [LoggedEvent] {
        let start = entryID == "0-0" ? "-" : "(" + entryID
        let entries = try await redis.xrange(partitioning.streamKey(partition), from: start, count: count)
        return try entries.map { try Self.decode($0, partition: partition, cache: nil) }
    }

    /// Every partition's events after `position`, at most `count` per partition, merged by
    /// entry id (events of one room keep their order: a room lives in one partition).
    public func read(after position: LogPosition, count: Int = 1000) async throws -> [LoggedEvent] {
        var events: [LoggedEvent] = []
        for partition in 0..<partitioning.count {
            events += try await read(partition: partition, after: position.entryIDs[partition], count: count)
        }
        return events.sorted { StreamID.less($0.entryID, $1.entryID) || ($0.entryID == $1.entryID && $0.partition < $1.partition) }
    }

    /// Waits up to `blockMs` for events after `position` in any partition (one XREAD BLOCK
    /// over every stream) and returns them; empty when none came.
    public func tail(after position: LogPosition, count: Int = 1000, blockMs: Int = 1000) async throws -> [LoggedEvent] {
        let streams = (0..<partitioning.count).map { (key: partitioning.streamKey($0), after: position.entryIDs[$0]) }
        let batches = try await redis.xread(streams, count: count, blockMs: blockMs)
        var events: [LoggedEvent] = []
        for batch in batches {
            guard let partition = partitioning.streamKeys.firstIndex(of: batch.key) else { continue }
            events += try batch.entries.map { try Self.decode($0, partition: partition) }
        }
        return events.sorted { StreamID.less($0.entryID, $1.entryID) }
    }

    /// The position of the last event of every partition now.
    public func head() async throws -> LogPosition {
        let commands = partitioning.streamKeys.map { ["XREVRANGE", $0, "+", "-", "COUNT", "1"] }
        let replies = try await redis.pipeline(commands)
        return LogPosition(entryIDs: replies.map { $0.array?.first?.array?.first?.string ?? "0-0" })
    }

    /// The position of the last event of one partition ("0-0" when empty).
    public func head(partition: Int) async throws -> String {
        let reply = try await redis.command(["XREVRANGE", partitioning.streamKey(partition), "+", "-", "COUNT", "1"])
        return reply.array?.first?.array?.first?.string ?? "0-0"
    }

    /// The id of the oldest event each partition still keeps ("0-0" for an empty one).
    public func oldest() async throws -> [String] {
        let commands = partitioning.streamKeys.map { ["XRANGE", $0, "-", "+", "COUNT", "1"] }
        let replies = try await redis.pipeline(commands)
        return replies.map { $0.array?.first?.array?.first?.string ?? "0-0" }
    }

    /// The guard keys of a partition, in this log's namespace.
    func guardKeys(_ partition: Int) -> GuardKeys { GuardKeys(partition: partition, namespace: partitioning.namespace) }

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
