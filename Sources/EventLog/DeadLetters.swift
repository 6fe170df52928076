import Drivers
import Events
import Foundation

/// Where a projector parks an event it could not apply (after retries), so that one bad
/// event never stops the events behind it: the stream `<ns>:dead:<projector>`, one entry
/// per parked event with its partition, log entry id, JSON and the error. An operator
/// lists them, fixes the cause and requeues them: requeued events are handed back to be
/// applied and leave the stream once that succeeded.
///
/// Bounded by what goes wrong, not by traffic: every entry is an event that failed, and
/// is alerted on (`parley.projector.dead_letters`). A flood of failures (a bug, a hostile
/// writer past the rules) is capped at about `maxLetters` entries, the oldest trimmed
/// first: the events themselves stay in the log, and the counter keeps counting.
public struct DeadLetters: Sendable {
    let redis: RedisClient
    /// The dead-letter stream (`<ns>:dead:<projector>`), for operators to inspect with redis-cli.
    public let key: String
    /// The projector whose events these are.
    public let projector: String

    /// One parked event.
    public struct Letter: Sendable, Equatable {
        /// The id of the letter in the dead-letter stream.
        public var id: String
        /// The log partition the event came from.
        public var partition: Int
        /// The event's entry id in the log.
        public var entryID: String
        /// The event as the log stores it ("" when the entry had no event field).
        public var json: String
        /// Why it could not be applied, as the projector saw it the last time.
        public var error: String
        /// When it was parked (ISO 8601).
        public var at: String
    }

    /// About the most letters kept (`MAXLEN ~`).
    public static let maxLetters = 100_000

    /// Parks an event with the error that stopped it.
    public func park(partition: Int, entryID: String, json: String, error: String, at: Date = Date()) async throws {
        _ = try await redis.xadd(
            key,
            fields: [
                ("partition", String(partition)), ("entryId", entryID), ("event", json), ("error", error), ("at", formatTimestamp(at)),
            ], maxLength: Self.maxLetters)
    }

    /// How many events are parked.
    public func count() async throws -> Int {
        Int(try await redis.command(["XLEN", key]).int ?? 0)
    }

    /// The parked events, oldest first (at most `count`).
    public func list(count: Int = 1000) async throws -> [Letter] {
        try await redis.xrange(key, count: count).map { entry in
            Letter(
                id: entry.id, partition: Int(entry["partition"] ?? "") ?? 0, entryID: entry["entryId"] ?? "", json: entry["event"] ?? "",
                error: entry["error"] ?? "", at: entry["at"] ?? "")
        }
    }

    /// The log entry ids of the newest `count` letters of `partition`'s events (an entry parked there was acknowledged
    /// without being applied, on purpose).
    public func recentEntryIDs(partition: Int, count: Int = 1000) async throws -> Set<String> {
        let newest = try RedisClient.entries(try await redis.command(["XREVRANGE", key, "+", "-", "COUNT", String(count)]))
        return Set(newest.filter { $0["partition"] == String(partition) }.compactMap { $0["entryId"] })
    }

    /// Hands each parked letter to `apply`, oldest first, and removes it once `apply`
    /// returned; one that throws again stays parked (its error is kept). Returns how many
    /// were applied.
    @discardableResult
    public func requeue(count: Int = 1000, _ apply: (Letter) async throws -> Void) async throws -> Int {
        var applied = 0
        for letter in try await list(count: count) {
            do { try await apply(letter) } catch { continue }
            try await redis.command(["XDEL", key, letter.id])
            applied += 1
        }
        return applied
    }
}
