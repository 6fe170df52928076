import Drivers

/// Stops a projector's live writes for a moment, across every server instance, so that
/// `parley-replay rebuild --shadow` can swap a caught-up shadow read model in while
/// nothing writes to the old one.
///
/// The replayer sets `<ns>:hold:<projector>` (with an expiry it renews, so a crashed
/// replayer holds nothing for long). A live runner looks at it before it reads a batch
/// and before it applies one; while it is set the runner applies nothing and records
/// `<ns>:paused:<projector>:<partition>` = its consumer name. The replayer goes on once
/// every partition is paused by its lease holder (or has no holder): from then on no live
/// write is under way or can start until the hold is released. Batches a runner had read
/// stay unacknowledged and are applied, to the new read model, after the release.
public struct ProjectionHold: Sendable {
    let redis: RedisClient
    let keys: Keys
    /// The projector whose live writes the hold stops.
    public let projector: String

    init(redis: RedisClient, keys: Keys, projector: String) {
        self.redis = redis
        self.keys = keys
        self.projector = projector
    }

    var holdKey: String { keys.hold(projector) }
    func pausedKey(_ partition: Int) -> String { keys.paused(projector, partition: partition) }
    func leaseKey(_ partition: Int) -> String { keys.lease(projector, partition: partition) }

    // MARK: - Live runner side

    /// Returns at once when no hold is set (one EXISTS); otherwise records that `consumer`
    /// has paused `partition` and waits until the hold is gone, calling `keepAlive` about
    /// once a second (the runner renews its lease there, so a long swap does not hand the
    /// partition to another instance).
    public func waitWhileHeld(partition: Int, consumer: String, keepAlive: () async throws -> Void = {}) async throws {
        var waited = 0
        while try await redis.command(["EXISTS", holdKey]).int == 1 {
            if waited % 50 == 0 {
                try await redis.command(["SET", pausedKey(partition), consumer, "PX", "60000"])
                try await keepAlive()
            }
            waited += 1
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: - Replayer side

    /// Sets the hold (expiring after `ttlMs` unless renewed). Fails when another replayer
    /// holds it already.
    public func acquire(owner: String, partitions: Int, ttlMs: Int = 15_000) async throws {
        // Pauses recorded for an earlier hold say nothing about this one.
        // One DEL per key: on a cluster they lie in different slots.
        for reply in try await redis.pipeline((0..<partitions).map { ["DEL", pausedKey($0)] }) { _ = try reply.orThrow() }
        let set = try await redis.command(["SET", holdKey, owner, "NX", "PX", String(ttlMs)])
        guard set.string == "OK" else {
            let holder = try await redis.command(["GET", holdKey]).string ?? "?"
            throw EventLog.Failure(description: "\(projector) is already held by \(holder) (another swap under way)")
        }
    }

    /// Keeps the hold for another `ttlMs`.
    public func renew(ttlMs: Int = 15_000) async throws {
        try await redis.command(["PEXPIRE", holdKey, String(ttlMs)])
    }

    /// Waits until no live runner can be writing: every partition either has no lease
    /// holder or its holder has recorded that it paused. Gives up after `seconds`.
    public func waitUntilQuiet(partitions: Int, seconds: Double = 30) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        for partition in 0..<partitions {
            while true {
                let replies = try await redis.pipeline([["GET", leaseKey(partition)], ["GET", pausedKey(partition)]])
                let holder = replies[0].string
                let paused = replies[1].string
                if holder == nil || holder == paused { break }
                guard ContinuousClock.now < deadline else {
                    throw EventLog.Failure(
                        description:
                            "the live \(projector) projector (\(holder ?? "?")) did not pause partition \(partition) in \(Int(seconds)) s")
                }
                try await renew()
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Lifts the hold: live runners go on with what they had read.
    public func release() async throws {
        try await redis.command(["DEL", holdKey])
    }
}

/// Marks an in-place rebuild of one projector as under way (`<ns>:rebuild:<projector>`),
/// so that a run that was interrupted is resumed at its checkpoint instead of emptying the
/// read model again.
public struct RebuildMarker: Sendable {
    let redis: RedisClient
    let key: String

    /// Whether an earlier rebuild was interrupted (and is to be resumed, not started over).
    public func isSet() async throws -> Bool { try await redis.command(["EXISTS", key]).int == 1 }
    /// Marks a rebuild by `owner` as started.
    public func set(owner: String) async throws { try await redis.command(["SET", key, owner]) }
    /// Marks the rebuild as done.
    public func clear() async throws { try await redis.command(["DEL", key]) }
}
