extension EventLog {
    /// Refuses a partition count other than the one the log was written with: a room lives
    /// in partition `hash(roomId) mod count`, so another count would read and append each
    /// room in the wrong stream, away from its history and its guard state. With `claim`
    /// (a server starting), a log that has no recorded count records this one.
    public func checkPartitionCount(claim: Bool) async throws {
        let count = String(partitioning.count)
        if claim { _ = try await redis.command("SET", keys.partitionCount, count, "NX") }
        guard let stored = try await redis.command("GET", keys.partitionCount).string, stored != count else { return }
        throw Failure(
            description: "PARLEY_LOG_PARTITIONS is \(count), but the log of namespace '\(keys.namespace)' was written with \(stored) "
                + "partitions (\(keys.partitionCount)): rooms would be looked for in the wrong streams. Set PARLEY_LOG_PARTITIONS=\(stored); "
                + "to change it, export the log (parley-replay export) and replay it into a new namespace")
    }
}
