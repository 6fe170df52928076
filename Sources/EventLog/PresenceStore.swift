import Drivers
import Foundation
import Logging

/// Who is online, across every instance: ephemeral, never in the log. Each instance marks the users it has a WebSocket
/// of, with an expiry it renews (`refresh`); an instance that dies stops renewing, and any instance's `reap` takes its
/// users offline once their marks expire. Changes go out on one pub/sub channel for every instance to fan out.
///
/// Keys (one hash tag, so each script touches one slot of a cluster):
/// - `<ns>:presence:{pr}:on:<userId>`: instance → expiry (Unix ms), while the user is online somewhere; deleted with
///   its last field
/// - `<ns>:presence:{pr}:exp`: sorted set of `userId instance` by expiry, for `reap`: one member per online user and
///   instance
/// - `<ns>:presence:{pr}:last`: userId → when they were last seen (Unix ms): one field per user who was ever online
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

    static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Marks `userIds` online on this instance until now + ttl; returns those who were offline everywhere before (and
    /// publishes that they are online).
    @discardableResult
    public func mark(_ userIds: [String], now: Date = Date()) async throws -> [String] {
        guard !userIds.isEmpty else { return [] }
        let nowMs = Self.ms(now)
        let expiry = nowMs + Int64(ttl.milliseconds)
        var came: [String] = []
        // In slices: one script call holds Redis for as long as it runs.
        for slice in stride(from: 0, to: userIds.count, by: 500).map({ Array(userIds[$0..<min($0 + 500, userIds.count)]) }) {
            let reply = try await Self.markScript.run(
                redis, keys: [expiries, lastSeen] + slice.map(on),
                arguments: [instance, String(expiry), String(nowMs)] + slice)
            let users: [RedisValue] = try reply.orThrow().array ?? []
            came += users.compactMap(\.string)
        }
        for userId in came { try await publish(Change(userId: userId, online: true, lastSeen: now)) }
        return came
    }

    /// This instance's last connection of `userId` closed: their mark here goes; if it was their last, they are offline
    /// (last seen now, published). Returns whether they went offline.
    @discardableResult
    public func unmark(_ userId: String, now: Date = Date()) async throws -> Bool {
        let nowMs = Self.ms(now)
        let reply = try await Self.unmarkScript.run(
            redis, keys: [expiries, lastSeen, on(userId)], arguments: [instance, String(nowMs), userId])
        guard try reply.orThrow().int == 1 else { return false }
        try await publish(Change(userId: userId, online: false, lastSeen: now))
        return true
    }

    /// Takes offline every user whose marks all expired (their instance died or froze past the ttl), at most 200 a
    /// call; returns them (published).
    @discardableResult
    public func reap(now: Date = Date()) async throws -> [Change] {
        let nowMs = Self.ms(now)
        let reply = try await Self.reapScript.run(redis, keys: [expiries, lastSeen], arguments: [String(nowMs), "\(prefix):on:"])
        let users: [RedisValue] = try reply.orThrow().array ?? []
        let gone = users.compactMap(\.string)
        let changes = gone.map { Change(userId: $0, online: false, lastSeen: now) }
        for change in changes { try await publish(change) }
        return changes
    }

    /// Whether `userId` is online on some instance now, and when they were last seen (nil: never).
    public func status(of userId: String, now: Date = Date()) async throws -> (online: Bool, lastSeen: Date?) {
        let replies = try await redis.pipeline([["HVALS", on(userId)], ["HGET", lastSeen, userId]])
        let nowMs = Self.ms(now)
        let marks: [RedisValue] = try replies[0].orThrow().array ?? []
        let online = marks.contains { (Int64($0.string ?? "") ?? 0) > nowMs }
        let last = try replies[1].orThrow().string.flatMap(Int64.init).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        return (online, online ? now : last)
    }

    func publish(_ change: Change) async throws {
        try await redis.command([
            "PUBLISH", channel, "\(change.userId) \(change.online ? "online" : "offline") \(Self.ms(change.lastSeen))",
        ])
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

    /// KEYS: expiries, lastSeen, then each user's `on` hash. ARGV: instance, expiry, now, then the user ids (as KEYS 3...).
    /// A user counts as coming online when no unexpired mark of theirs existed before.
    static let markScript = RedisScript(
        #"""
        local came = {}
        for i = 3, #KEYS do
          local user = ARGV[i + 1]
          local live = false
          for _, v in ipairs(redis.call('HVALS', KEYS[i])) do
            if tonumber(v) > tonumber(ARGV[3]) then live = true end
          end
          redis.call('HSET', KEYS[i], ARGV[1], ARGV[2])
          redis.call('ZADD', KEYS[1], ARGV[2], user .. ' ' .. ARGV[1])
          if not live then came[#came + 1] = user end
        end
        return came
        """#)

    /// KEYS: expiries, lastSeen, the user's `on` hash. ARGV: instance, now, userId. 1 when the user is offline after it.
    static let unmarkScript = RedisScript(
        #"""
        if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return 0 end
        redis.call('ZREM', KEYS[1], ARGV[3] .. ' ' .. ARGV[1])
        for _, v in ipairs(redis.call('HVALS', KEYS[3])) do
          if tonumber(v) > tonumber(ARGV[2]) then return 0 end
        end
        -- Only expired marks of instances that died are left: `reap` passes over them once this key is gone.
        redis.call('DEL', KEYS[3])
        redis.call('HSET', KEYS[2], ARGV[3], ARGV[2])
        return 1
        """#)

    /// KEYS: expiries, lastSeen. ARGV: now, the prefix of the `on` hashes. Returns the users it took offline.
    static let reapScript = RedisScript(
        #"""
        local gone = {}
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 200)
        for _, member in ipairs(due) do
          local user, inst = string.match(member, '^(.*) (.*)$')
          redis.call('ZREM', KEYS[1], member)
          local key = ARGV[2] .. user
          local v = redis.call('HGET', key, inst)
          -- Renewed since (a newer score) or already gone: nothing to do. Otherwise the user is offline once their last
          -- mark goes; other expired marks of theirs are due too and go in this call or the next.
          if v and tonumber(v) <= tonumber(ARGV[1]) then
            redis.call('HDEL', key, inst)
            if redis.call('EXISTS', key) == 0 then
              redis.call('HSET', KEYS[2], user, ARGV[1])
              gone[#gone + 1] = user
            end
          end
        end
        return gone
        """#)
}

extension EventLog {
    /// The presence store of this log's namespace, for an instance named `instance`.
    public func presence(instance: String, ttl: Duration = .seconds(20)) -> PresenceStore {
        PresenceStore(redis: redis, namespace: keys.namespace, instance: instance, ttl: ttl)
    }
}
