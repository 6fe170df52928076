/// One entry of a Redis stream: its id and its field/value pairs in order.
public struct StreamEntry: Sendable, Equatable {
    /// The entry's stream id (`<ms>-<seq>`), as Redis returned it: what XACK, XRANGE and XREAD take.
    public var id: String
    /// The pairs in the order they were written; a list, not a map, so repeated names and order survive.
    public var fields: [(String, String)]

    /// Builds an entry as read from a reply; nothing checks that `id` is a valid stream id.
    public init(id: String, fields: [(String, String)]) {
        self.id = id
        self.fields = fields
    }

    /// The value of the first field named `name`.
    public subscript(name: String) -> String? {
        fields.first(where: { $0.0 == name })?.1
    }

    /// Same id and the same pairs in the same order (tuples are not `Equatable`, hence written out).
    public static func == (lhs: StreamEntry, rhs: StreamEntry) -> Bool {
        lhs.id == rhs.id && lhs.fields.elementsEqual(rhs.fields, by: { $0 == $1 })
    }
}

/// What `XAUTOCLAIM` returns: where to continue, the entries now owned by the caller, and
/// the ids that were pending but no longer exist in the stream.
public struct AutoClaimResult: Sendable, Equatable {
    /// The cursor to pass as `start` to continue the scan; `0-0` when the whole pending list has been scanned.
    public var next: String
    /// The claimed entries, now pending for the calling consumer; ack them once processed.
    public var entries: [StreamEntry]
    /// Ids that were pending but have been trimmed from the stream: Redis dropped them from the pending list.
    public var deletedIDs: [String]
}

extension RedisClient {
    /// XADD: appends an entry and returns its id.
    public func xadd(_ key: String, id: String = "*", fields: [(String, String)], maxLength: Int? = nil) async throws -> String {
        let reply = try await command(Self.xaddArguments(key, id: id, fields: fields, maxLength: maxLength))
        guard let entryID = reply.string else { throw DriverError(.redis, .invalid, "XADD answered \(reply)") }
        return entryID
    }

    /// The argv of an XADD, for pipelines.
    public static func xaddArguments(_ key: String, id: String = "*", fields: [(String, String)], maxLength: Int? = nil) -> [String] {
        var arguments = ["XADD", key]
        if let maxLength { arguments += ["MAXLEN", "~", String(maxLength)] }
        arguments.append(id)
        for (name, value) in fields { arguments += [name, value] }
        return arguments
    }

    /// XRANGE from `start` to `end` inclusive (`-`/`+` for the ends, `(id` for exclusive).
    public func xrange(_ key: String, from start: String = "-", to end: String = "+", count: Int? = nil) async throws -> [StreamEntry] {
        var arguments = ["XRANGE", key, start, end]
        if let count { arguments += ["COUNT", String(count)] }
        return try Self.entries(try await command(arguments))
    }

    /// XREAD [BLOCK ms] over several streams; returns the entries after each given id, per
    /// stream, or nothing when the block timed out.
    public func xread(_ streams: [(key: String, after: String)], count: Int? = nil, blockMs: Int? = nil) async throws -> [(
        key: String, entries: [StreamEntry]
    )] {
        try await blockingStreamRead(["XREAD"], streams, count: count, blockMs: blockMs)
    }

    /// XGROUP CREATE (with MKSTREAM); an existing group is left as it is.
    public func xgroupCreate(_ key: String, group: String, startID: String = "0") async throws {
        let reply = try await routed(by: key) { try $0.command(["XGROUP", "CREATE", key, group, startID, "MKSTREAM"]) }
        if case .error(let text) = reply, !text.hasPrefix("BUSYGROUP") {
            throw DriverError(.redis, .server, text)
        }
    }

    /// XREADGROUP: new entries (`>`) or this consumer's pending ones (`0`), per stream.
    ///
    /// With `confirmed` and `Configuration.ackReplicas` > 0, entries are returned only once that many replicas have
    /// them (a `WAIT` on the same connection: the read is a write, after the entries in the replication stream), so a
    /// reader never acts on an entry that a failover could take back; short of that it throws `NOREPLICAS`, and the
    /// entries stay pending for the next read.
    public func xreadgroup(
        group: String, consumer: String, _ streams: [(key: String, after: String)], count: Int? = nil, blockMs: Int? = nil,
        confirmed: Bool = false
    ) async throws -> [(key: String, entries: [StreamEntry])] {
        try await blockingStreamRead(
            ["XREADGROUP", "GROUP", group, consumer], streams, count: count, blockMs: blockMs,
            confirmReplicas: confirmed ? configuration.ackReplicas : 0)
    }

    /// XACK: returns how many entries were acknowledged.
    @discardableResult
    public func xack(_ key: String, group: String, ids: [String]) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        let reply = try await command(["XACK", key, group] + ids)
        return Int(reply.int ?? 0)
    }

    /// XAUTOCLAIM: takes over entries pending longer than `minIdleMs` from dead consumers.
    public func xautoclaim(
        _ key: String, group: String, consumer: String, minIdleMs: Int, start: String = "0-0", count: Int = 100
    ) async throws -> AutoClaimResult {
        let reply = try await command(["XAUTOCLAIM", key, group, consumer, String(minIdleMs), start, "COUNT", String(count)])
        guard let parts = reply.array, parts.count >= 2, let next = parts[0].string else {
            throw DriverError(.redis, .invalid, "XAUTOCLAIM answered \(reply)")
        }
        let deleted = parts.count > 2 ? (parts[2].array ?? []).compactMap(\.string) : []
        return AutoClaimResult(next: next, entries: try Self.entries(parts[1]), deletedIDs: deleted)
    }

    /// XINFO STREAM as a field map (length, last-generated-id, first-entry, ...).
    public func xinfoStream(_ key: String) async throws -> [String: RedisValue] {
        try Self.fieldMap(try await command(["XINFO", "STREAM", key]))
    }

    /// XINFO GROUPS: one field map per consumer group (name, pending, last-delivered-id, lag).
    public func xinfoGroups(_ key: String) async throws -> [[String: RedisValue]] {
        let reply = try await command(["XINFO", "GROUPS", key])
        return try (reply.array ?? []).map(Self.fieldMap)
    }

    private func blockingStreamRead(
        _ command: [String], _ streams: [(key: String, after: String)], count: Int?, blockMs: Int?, confirmReplicas: Int = 0
    ) async throws -> [(key: String, entries: [StreamEntry])] {
        var arguments = command
        if let count { arguments += ["COUNT", String(count)] }
        if let blockMs { arguments += ["BLOCK", String(blockMs)] }
        arguments.append("STREAMS")
        arguments += streams.map(\.key)
        arguments += streams.map(\.after)
        let argv = arguments
        let waitMs = (blockMs ?? 0) + configuration.commandTimeout.milliseconds
        // XREADGROUP moves the group's cursor: sent again after a broken connection it could hand entries out twice
        // (they stay pending, so nothing is lost, but the retry belongs to the caller).
        let ackTimeout = configuration.ackTimeout
        let reply = try await routed(by: streams.first?.key, onlyReads: command == ["XREAD"]) { connection in
            let reply = blockMs == nil ? try connection.command(argv) : try connection.command(argv, timeoutMs: waitMs)
            guard confirmReplicas > 0, let streams = reply.array, let first = streams.first?.array, first.count == 2,
                let key = first[0].string
            else { return reply }
            // WAIT covers this connection's last write. A read of pending entries writes nothing, and a blocked read
            // served by another client's XADD may not count as this connection's: claiming the entries again (to the
            // same consumer) is a write of its own, after the entries in the replication stream.
            let ids = try Self.entries(first[1]).map(\.id)
            if !ids.isEmpty {
                _ = try connection.command(["XCLAIM", key, command[2], command[3], "0"] + ids + ["JUSTID"]).orThrow()
            }
            try connection.confirm(replicas: confirmReplicas, within: ackTimeout)
            return reply
        }.orThrow()
        guard let streams = reply.array else { return [] }  // null: BLOCK timed out
        return try streams.map { stream in
            guard let pair = stream.array, pair.count == 2, let key = pair[0].string else {
                throw DriverError(.redis, .invalid, "stream read answered \(stream)")
            }
            return (key, try Self.entries(pair[1]))
        }
    }

    /// Parses `[[id, [field, value, ...]], ...]`. A null entry (deleted while pending) is skipped.
    public static func entries(_ reply: RedisValue) throws -> [StreamEntry] {
        guard let items = reply.array else { return [] }
        var result: [StreamEntry] = []
        result.reserveCapacity(items.count)
        for item in items {
            guard let pair = item.array, pair.count == 2, let id = pair[0].string else {
                throw DriverError(.redis, .invalid, "stream entry \(item)")
            }
            let flat = pair[1].array ?? []
            var fields: [(String, String)] = []
            fields.reserveCapacity(flat.count / 2)
            var index = 0
            while index + 1 < flat.count {
                fields.append((flat[index].string ?? "", flat[index + 1].string ?? ""))
                index += 2
            }
            result.append(StreamEntry(id: id, fields: fields))
        }
        return result
    }

    /// A reply of field/value pairs (XINFO's) as a map.
    public static func fieldMap(_ reply: RedisValue) throws -> [String: RedisValue] {
        guard let flat = reply.array else { throw DriverError(.redis, .invalid, "expected a field list, got \(reply)") }
        var map: [String: RedisValue] = [:]
        var index = 0
        while index + 1 < flat.count {
            if let name = flat[index].string { map[name] = flat[index + 1] }
            index += 2
        }
        return map
    }
}
