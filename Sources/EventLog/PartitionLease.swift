import Drivers

/// The right to project one partition for one projector: one holder at a time across
/// every server instance and `parley-replay`, so that a partition's events are applied in
/// log order. The key expires unless its holder renews it, so a holder that dies hands the
/// partition on after `ttl`. Taking, renewing and releasing are each one atomic step
/// (a script): a renewal never extends a lease another process took meanwhile, and a
/// release never deletes one that is no longer ours.
///
/// Each takeover raises the lease's **epoch** (a counter kept beside the lease that never
/// expires), and a holder writes its epoch with everything it projects: a read model
/// refuses a write of an older epoch than one it has seen. A holder that froze past its
/// lease (a GC pause, a SIGSTOP, a store call that hung) and wakes up still thinking it
/// holds the partition is thereby fenced off: its first write fails, and it stops.
public struct PartitionLease: Sendable {
    /// How long a lease lasts unless renewed; holders renew at a third of it.
    public static let ttl: Duration = .seconds(10)

    let redis: RedisClient
    /// The lease key (`<ns>:lease:<projector>:<p>`).
    public let key: String
    /// The epoch counter's key (`{<lease key>}:epoch`).
    let epochKey: String
    /// Who this handle acquires for (a consumer name, or `parley-replay-<pid>-<n>`).
    public let owner: String
    /// How long an acquisition lasts unless renewed.
    public let ttl: Duration

    /// Takes the lease when nobody holds it, or renews it when we do; false when another
    /// holder has it.
    public func acquire() async throws -> Bool { try await take() != nil }

    /// Takes the lease when nobody holds it (raising the epoch) or renews it when we do, and returns the epoch we hold it
    /// at; nil when another holder has it.
    public func take() async throws -> Int64? {
        let epoch = try await Self.leaseScript.run(redis, keys: [key, epochKey], arguments: [owner, String(ttl.milliseconds), "take"])
            .orThrow().int
        return epoch.flatMap { $0 > 0 ? $0 : nil }
    }

    /// Extends the lease if it is still ours; false when it expired or another holder has
    /// it (then whatever was done under it may have overlapped another holder's work).
    public func renew() async throws -> Bool {
        (try await Self.leaseScript.run(redis, keys: [key, epochKey], arguments: [owner, String(ttl.milliseconds), "renew"]).orThrow()
            .int ?? 0) > 0
    }

    /// While the lease is ours, raises its epoch above `seen` (an epoch a read model holds: the counter was lost, say
    /// with a Redis restored from an older backup) and returns the new one; nil when the lease is not ours.
    public func raiseEpoch(above seen: Int64) async throws -> Int64? {
        let epoch = try await Self.raiseScript.run(redis, keys: [key, epochKey], arguments: [owner, String(seen)]).orThrow().int
        return epoch.flatMap { $0 > 0 ? $0 : nil }
    }

    /// Gives the lease up if it is still ours (a no-op otherwise).
    public func release() async throws {
        _ = try await Self.releaseScript.run(redis, keys: [key], arguments: [owner]).orThrow()
    }

    /// Who holds the lease now (nil: nobody).
    public func holder() async throws -> String? {
        try await redis.command(["GET", key]).string
    }

    /// Runs `body` while renewing `leases` every third of their `ttl`, so that work longer
    /// than a lease never lets another process in; throws `Lost` (cancelling `body`) when a
    /// renewal finds a lease expired or taken by someone else. A renewal that fails for a
    /// store outage is tried again at the next tick while the lease may still be valid.
    public static func renewing<T: Sendable>(_ leases: [PartitionLease], _ body: @escaping @Sendable () async throws -> T) async throws -> T
    {
        guard let interval = leases.map(\.ttl).min().map({ $0 / 3 }) else { return try await body() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                var renewed = ContinuousClock.now
                while true {
                    try await Task.sleep(for: interval)
                    do {
                        for lease in leases where !(try await lease.renew()) { throw Lost(key: lease.key) }
                        renewed = .now
                    } catch let error as DriverError where error.isTransient && ContinuousClock.now - renewed < interval * 2 {
                        continue
                    }
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }

    /// A lease was found held by another process while we worked under it.
    public struct Lost: Error, CustomStringConvertible {
        /// The lease that was lost.
        public let key: String
        /// Names the lease, for the log line that reports it.
        public var description: String { "the lease \(key) was taken by another process" }
    }

    /// KEYS: the lease, its epoch. ARGV: owner, ttl ms, `take` (take a free lease or renew ours) or `renew` (ours only).
    /// Returns the epoch held at, 0 when the lease is another's.
    private static let leaseScript = RedisScript(
        """
        if ARGV[3] == 'take' and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
          return redis.call('INCR', KEYS[2])
        end
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
          if epoch < 1 then epoch = redis.call('INCR', KEYS[2]) end
          return epoch
        end
        return 0
        """)

    /// KEYS: the lease, its epoch. ARGV: owner, the epoch to exceed. Returns the new epoch, 0 when the lease is another's.
    private static let raiseScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
        if epoch <= tonumber(ARGV[2]) then
          epoch = tonumber(ARGV[2]) + 1
          redis.call('SET', KEYS[2], epoch)
        end
        return epoch
        """)

    private static let releaseScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)
}
