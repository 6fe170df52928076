import Drivers

/// The cold part of the log: every entry the archiver copied out of the Redis streams,
/// in PostgreSQL table `<schema>.log_archive`, one row per entry with its stream id, the
/// stored JSON exactly as it was (the hash chain's input, so `audit chain` checks across
/// the seam) and its hash. Once an entry is here and every consumer group has it, the
/// stream may drop it (`LogArchiver`); readers then find it here (`LogReader`).
///
/// The table is the archiver's checkpoint too: the last row of a partition is how far it
/// got. Rows are only ever inserted (`ON CONFLICT DO NOTHING`), so two archivers copying
/// the same entries, or one copying them again after a crash, leave one row each.
///
/// Bounded by the log itself: one row per event, about the event's JSON plus 60 bytes
/// (`docs/operations.md`). It is the log's only copy of trimmed events: back it up with
/// the database.
public struct LogArchive: Sendable {
    let postgres: PostgresClient
    /// The schema the table lives in (`PARLEY_POSTGRES_SCHEMA`, beside the metadata read models; no rebuild touches it).
    public let schema: String

    /// The archive of the log in `schema` of `postgres`; nothing is created before `prepare`.
    public init(postgres: PostgresClient, schema: String) {
        self.postgres = postgres
        self.schema = schema
    }

    var table: String { "\(schema).log_archive" }

    /// Creates the schema and the table if they do not exist (every process that reads or writes the archive calls it).
    public func prepare() async throws {
        let table = self.table
        let schema = self.schema
        try await postgres.withConnection { c in
            _ = try c.execute("CREATE SCHEMA IF NOT EXISTS \(schema)")
            _ = try c.execute(
                """
                CREATE TABLE IF NOT EXISTS \(table) (
                    partition integer NOT NULL,
                    ms        bigint  NOT NULL,
                    seq       bigint  NOT NULL,
                    entry_id  text    NOT NULL,
                    event     text    NOT NULL,
                    hash      text    NOT NULL,
                    PRIMARY KEY (partition, ms, seq)
                )
                """)
        }
    }

    /// The id of the last entry of `partition` archived ("0-0": none).
    public func archivedThrough(partition: Int) async throws -> String {
        let rows = try await postgres.query(
            "SELECT entry_id FROM \(table) WHERE partition = $1 ORDER BY ms DESC, seq DESC LIMIT 1", [partition])
        return rows.first?.string("entry_id") ?? "0-0"
    }

    /// Copies `entries` of `partition` (in stream order) into the archive; entries already there are left as they are.
    public func append(partition: Int, _ entries: [StreamEntry]) async throws {
        guard !entries.isEmpty else { return }
        var ms: [String?] = []
        var seq: [String?] = []
        var ids: [String?] = []
        var events: [String?] = []
        var hashes: [String?] = []
        for entry in entries {
            guard let (m, s) = StreamID.parse(entry.id) else { continue }
            let json = entry["event"] ?? ""
            ms.append(String(m))
            seq.append(String(s))
            ids.append(entry.id)
            events.append(json)
            hashes.append(Self.hash(of: json))
        }
        try await postgres.query(
            """
            INSERT INTO \(table) (partition, ms, seq, entry_id, event, hash)
            SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[])
            ON CONFLICT DO NOTHING
            """, [partition, postgresArray(ms), postgresArray(seq), postgresArray(ids), postgresArray(events), postgresArray(hashes)])
    }

    /// The archived entries of `partition` after `after` (exclusive) and before `before` (exclusive, nil: no bound), up
    /// to `until` (inclusive, "+": no bound), oldest first, at most `count`.
    public func entries(partition: Int, after: String, before: String?, until: String, count: Int) async throws -> [StreamEntry] {
        guard count > 0 else { return [] }
        let (afterMs, afterSeq) = StreamID.parse(after) ?? (0, 0)
        var sql = "SELECT entry_id, event FROM \(table) WHERE partition = $1 AND (ms, seq) > ($2, $3)"
        var parameters: [any PostgresBindable] = [partition, Int64(afterMs), Int64(afterSeq)]
        if let before, let (m, s) = StreamID.parse(before) {
            sql += " AND (ms, seq) < ($\(parameters.count + 1), $\(parameters.count + 2))"
            parameters += [Int64(m), Int64(s)]
        }
        if until != "+", let (m, s) = StreamID.parse(until) {
            sql += " AND (ms, seq) <= ($\(parameters.count + 1), $\(parameters.count + 2))"
            parameters += [Int64(m), Int64(s)]
        }
        sql += " ORDER BY ms, seq LIMIT \(count)"
        return try await postgres.query(sql, parameters).map(Self.entry)
    }

    /// The archived entries of `partition` before `before` (and `before` itself when `inclusive`), newest first, at most
    /// `count`.
    public func entries(partition: Int, before: String, inclusive: Bool, count: Int) async throws -> [StreamEntry] {
        guard count > 0, let (m, s) = StreamID.parse(before) else { return [] }
        let comparison = inclusive ? "<=" : "<"
        return try await postgres.query(
            """
            SELECT entry_id, event FROM \(table) WHERE partition = $1 AND (ms, seq) \(comparison) ($2, $3)
            ORDER BY ms DESC, seq DESC LIMIT \(count)
            """, [partition, Int64(m), Int64(s)]
        ).map(Self.entry)
    }

    /// How many entries of `partition` are archived before `before` (exclusive; nil: all).
    public func count(partition: Int, before: String?) async throws -> Int {
        var sql = "SELECT count(*) AS n FROM \(table) WHERE partition = $1"
        var parameters: [any PostgresBindable] = [partition]
        if let before, let (m, s) = StreamID.parse(before) {
            sql += " AND (ms, seq) < ($2, $3)"
            parameters += [Int64(m), Int64(s)]
        }
        return try await postgres.query(sql, parameters).first?.int("n") ?? 0
    }

    /// The archived event at `entryID` of `partition` (a repeated send's first message, trimmed from the stream since).
    public func event(partition: Int, entryID: String) async throws -> LoggedEvent? {
        guard let (m, s) = StreamID.parse(entryID) else { return nil }
        let rows = try await postgres.query(
            "SELECT entry_id, event FROM \(table) WHERE partition = $1 AND ms = $2 AND seq = $3", [partition, Int64(m), Int64(s)])
        guard let entry = rows.first.map(Self.entry) else { return nil }
        return try EventLog.decode(entry, partition: partition)
    }

    private static func entry(_ row: PostgresRow) -> StreamEntry {
        StreamEntry(id: row.string("entry_id") ?? "0-0", fields: [("event", row.string("event") ?? "")])
    }

    /// The `hash` the append script wrote at the end of the stored JSON (`…,"prevHash":"…","hash":"<40 hex>"}`); "" for
    /// an entry without one.
    static func hash(of json: String) -> String {
        guard let marker = json.range(of: "\"hash\":\"", options: .backwards) else { return "" }
        return String(json[marker.upperBound...].prefix(while: { $0 != "\"" }))
    }
}
