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

    /// Checks that this process reads the archive the log's trimmed entries are in: the first process with an archive
    /// records its schema in `<ns>:archive`, and one with another schema, or with `PARLEY_ARCHIVE=off` on a log that
    /// has an archive, stops at start. Otherwise it would read a log with its trimmed entries missing, and a second
    /// archiver would trim by an archive the others never read.
    public func checkArchive(claim: Bool) async throws {
        let mine = reader.archive?.schema
        if claim, let mine { _ = try await redis.command("SET", keys.archive, mine, "NX") }
        let stored = try await redis.command("GET", keys.archive).string
        guard stored != mine, let stored else { return }
        let setting = mine.map { "PARLEY_POSTGRES_SCHEMA=\($0)" } ?? "PARLEY_ARCHIVE=off"
        throw Failure(
            description: "the log of namespace '\(keys.namespace)' keeps its trimmed entries in \(stored).log_archive (\(keys.archive)), "
                + "but this process has \(setting): it would read the log without them. Set PARLEY_ARCHIVE=postgres and "
                + "PARLEY_POSTGRES_SCHEMA=\(stored)")
    }
}
