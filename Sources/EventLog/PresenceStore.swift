import Drivers
import Events
import Foundation
import Logging

/// Who is online, across every instance: ephemeral, never in the log. Each instance marks the users it has a WebSocket
/// of, with an expiry it renews (`refresh`); an instance that dies stops renewing, and any instance's `reap` takes its
/// users offline once their marks expire. Changes go out on one pub/sub channel for every instance to fan out, published
/// by the scripts that make them, so they come in the order they happened. Times are Redis's (`TIME`), one clock for all.
///
/// Keys (one hash tag, so each script touches one slot of a cluster):
/// - `<ns>:presence:{pr}:on:<userId>`: instance → expiry (Unix ms), while the user is online somewhere; deleted with
///   its last field
/// - `<ns>:presence:{pr}:exp`: sorted set of `userId instance` by expiry, for `reap`: one member per online user and
///   instance
/// - `<ns>:presence:{pr}:last`: userId → when they were last seen (Unix ms): one field per user who was ever online
///
/// `reap` reads users' `on` hashes it finds in the sorted set (not declared in KEYS: they share its hash tag, so the one
/// slot holds them all, which Redis Cluster allows). The whole of presence lives on one primary of a cluster.
public struct PresenceStore: Sendable {
    let redis: RedisClient
    let namespace: String
    /// This process's name in the marks (random per start).
    public let instance: String
    /// How long a mark lasts unless renewed.
    public let ttl: Duration

    init(redis: RedisClient, namespace: String, instance: String, ttl: Duration) {
        self.redis = redis
        self.namespace = namespace
        self.instance = instance
        self.ttl = ttl
    }

    var prefix: String { "\(namespace):presence:{pr}" }
    func on(_ userId: String) -> String { "\(prefix):on:\(userId)" }
    var expiries: String { "\(prefix):exp" }
    var lastSeen: String { "\(prefix):last" }
    /// The channel changes are published on: `userId online|offline lastSeenMs`.
    public var channel: String { "\(namespace):presence" }

    /// A change of one user's presence.
    public struct Change: Sendable, Equatable {
        public let userId: String
        public let online: Bool
        /// When they were last seen (now, for a user coming online).
        public let lastSeen: Date

        public init(userId: String, online: Bool, lastSeen: Date) {
            self.userId = userId
            self.online = online
            self.lastSeen = lastSeen
        }
    }

    /// Marks `userIds` online on this instance until now + ttl (Redis's clock); those who were offline everywhere before
    /// are published as online, by the script itself: changes reach the channel in the order the scripts ran, whichever
    /// instance ran them. Returns them.
    @discardableResult
    public func mark(_ userIds: [String]) async throws -> [String] {
        var came: [String] = []
        // In slices: one script call holds Redis for as long as it runs.
        for slice in stride(from: 0, to: userIds.count, by: 500).map({ Array(userIds[$0..<min($0 + 500, userIds.count)]) }) {
            let reply = try await Self.markScript.run(
                redis, keys: [expiries, lastSeen] + slice.map(on), arguments: [instance, String(ttl.milliseconds), channel] + slice)
            let users: [RedisValue] = try reply.orThrow().array ?? []
            came += users.compactMap(\.string)
        }
        return came
    }

    /// This instance's last connection of `userId` closed: their mark here goes; if it was their last, they are offline
    /// (last seen now, published by the script). Returns whether they went offline.
    @discardableResult
    public func unmark(_ userId: String) async throws -> Bool {
        let reply = try await Self.unmarkScript.run(redis, keys: [expiries, lastSeen, on(userId)], arguments: [instance, userId, channel])
        return try reply.orThrow().int == 1
    }

    /// Takes offline every user whose marks all expired (their instance died or froze past the ttl), up to `limit` (in
    /// calls of 200); returns them (published by the script).
    @discardableResult
    public func reap(limit: Int = 10_000) async throws -> [String] {
        var gone: [String] = []
        while gone.count < limit {
            let reply = try await Self.reapScript.run(redis, keys: [expiries, lastSeen], arguments: ["\(prefix):on:", channel])
            let items: [RedisValue] = try reply.orThrow().array ?? []
            guard let due = items.first?.int else { break }
            gone += items.dropFirst().compactMap(\.string)
            if due < 200 { break }  // the last call found fewer than it may take: nothing more is due
        }
        return gone
    }

    /// Whether `userId` is online on some instance now, and when they were last seen (nil: never). `now` is this
    /// process's clock: a mark within the clock skew of its expiry may read either way.
    public func status(of userId: String, now: Date = Date()) async throws -> (online: Bool, lastSeen: Date?) {
        let replies = try await redis.pipeline([["HVALS", on(userId)], ["HGET", lastSeen, userId]])
        let nowMs = unixMilliseconds(now)
        let marks: [RedisValue] = try replies[0].orThrow().array ?? []
        let online = marks.contains { (Int64($0.string ?? "") ?? 0) > nowMs }
        let last = try replies[1].orThrow().string.flatMap(Int64.init).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        return (online, online ? now : last)
    }

    /// Parses a published change.
    public static func parse(_ payload: String) -> Change? {
        let parts = payload.split(separator: " ").map(String.init)
        guard parts.count == 3, let ms = Int64(parts[2]), parts[1] == "online" || parts[1] == "offline" else { return nil }
        return Change(userId: parts[0], online: parts[1] == "online", lastSeen: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// Calls `onChange` for every change any instance publishes, until cancelled.
    public func subscribe(logger: Logger, onChange: @escaping @Sendable (Change) -> Void) async {
        let subscriber = RedisSubscriber(client: redis, channels: [channel])
        await subscriber.run(logger: logger) { _, payload in
            if let change = Self.parse(payload) { onChange(change) }
        }
    }

    /// The time in Redis, in ms (one clock for every instance); scripts are replicated by their effects, so it may be read.
    static let now = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

    /// KEYS: expiries, lastSeen, then each user's `on` hash. ARGV: instance, ttl ms, channel, then the user ids (as KEYS 3...).
    /// A user counts as coming online when no unexpired mark of theirs existed before; it is published here.
    static let markScript = RedisScript(
        now + #"""
            local expiry = now + tonumber(ARGV[2])
            local came = {}
            for i = 3, #KEYS do
              local user = ARGV[i + 1]
              local live = false
              for _, v in ipairs(redis.call('HVALS', KEYS[i])) do
                if tonumber(v) > now then live = true end
              end
              redis.call('HSET', KEYS[i], ARGV[1], expiry)
              redis.call('ZADD', KEYS[1], expiry, user .. ' ' .. ARGV[1])
              if not live then
                came[#came + 1] = user
                redis.call('PUBLISH', ARGV[3], user .. ' online ' .. now)
              end
            end
            return came
            """#)

    /// KEYS: expiries, lastSeen, the user's `on` hash. ARGV: instance, userId, channel. 1 when the user is offline after it
    /// (published here).
    static let unmarkScript = RedisScript(
        now + #"""
            if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return 0 end
            redis.call('ZREM', KEYS[1], ARGV[2] .. ' ' .. ARGV[1])
            for _, v in ipairs(redis.call('HVALS', KEYS[3])) do
              if tonumber(v) > now then return 0 end
            end
            -- Only expired marks of instances that died are left: `reap` passes over them once this key is gone.
            redis.call('DEL', KEYS[3])
            redis.call('HSET', KEYS[2], ARGV[2], now)
            redis.call('PUBLISH', ARGV[3], ARGV[2] .. ' offline ' .. now)
            return 1
            """#)

    /// KEYS: expiries, lastSeen. ARGV: the prefix of the `on` hashes (all under the same hash tag as KEYS), channel.
    /// Returns {how many were due (at most 200), the users it took offline (published here)...}.
    static let reapScript = RedisScript(
        now + #"""
            local result = {0}
            local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 200)
            result[1] = #due
            for _, member in ipairs(due) do
              local user, inst = string.match(member, '^(.*) (.*)$')
              redis.call('ZREM', KEYS[1], member)
              local key = ARGV[1] .. user
              local v = redis.call('HGET', key, inst)
              -- Renewed since (a newer score) or already gone: nothing to do. Otherwise the user is offline once their last
              -- mark goes; other expired marks of theirs are due too and go in this call or the next.
              if v and tonumber(v) <= now then
                redis.call('HDEL', key, inst)
                if redis.call('EXISTS', key) == 0 then
                  redis.call('HSET', KEYS[2], user, now)
                  redis.call('PUBLISH', ARGV[2], user .. ' offline ' .. now)
                  result[#result + 1] = user
                end
              end
            end
            return result
            """#)
}

extension EventLog {
    /// The presence store of this log's namespace, for an instance named `instance`.
    public func presence(instance: String, ttl: Duration = .seconds(20)) -> PresenceStore {
        PresenceStore(redis: redis, namespace: keys.namespace, instance: instance, ttl: ttl)
    }
}
