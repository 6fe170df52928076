import Drivers
import Events

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
/// Beside it, `<schema>.log_message_facts` holds what the rules need of every archived
/// message (who sent it, whether it is deleted), written in the same statement as its
/// entries: once a message's last change is trimmed, its record leaves the guard state in
/// Redis (`LogArchiver`) and an edit, delete or reply finds it here. `<schema>.log_evicted`
/// is how far that eviction got per partition.
///
/// Bounded by the log itself: one row per event, about the event's JSON plus 60 bytes,
/// and one fact row per message (`docs/operations.md`). It is the log's only copy of
/// trimmed events: back it up with the database.
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
    var facts: String { "\(schema).log_message_facts" }
    var evicted: String { "\(schema).log_evicted" }

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
            // A message's record and the entry of its last change (the eviction's order).
            _ = try c.execute(
                """
                CREATE TABLE IF NOT EXISTS \(self.facts) (
                    room_id    text    NOT NULL,
                    message_id text    NOT NULL,
                    partition  integer NOT NULL,
                    sender_id  text    NOT NULL,
                    deleted    boolean NOT NULL,
                    ms         bigint  NOT NULL,
                    seq        bigint  NOT NULL,
                    PRIMARY KEY (room_id, message_id)
                )
                """)
            _ = try c.execute("CREATE INDEX IF NOT EXISTS log_message_facts_changed ON \(self.facts) (partition, ms, seq)")
            // Whether the message is a reply in a thread (it cannot be a thread's root): part of its record.
            _ = try c.execute("ALTER TABLE \(self.facts) ADD COLUMN IF NOT EXISTS in_thread boolean NOT NULL DEFAULT false")
            _ = try c.execute(
                "CREATE TABLE IF NOT EXISTS \(self.evicted) (partition integer PRIMARY KEY, ms bigint NOT NULL, seq bigint NOT NULL)")
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
        var facts = MessageFacts()
        for entry in entries {
            guard let (m, s) = StreamID.parse(entry.id) else { continue }
            let json = entry["event"] ?? ""
            ms.append(String(m))
            seq.append(String(s))
            ids.append(entry.id)
            events.append(json)
            hashes.append(Self.hash(of: json))
            facts.add(json, ms: m, seq: s)
        }
        // One statement: the entries and their messages' facts are archived together or not at all. A fact row is only
        // ever moved forward (deleted stays deleted, its last change only later), so copying a batch again changes nothing.
        try await postgres.query(
            """
            WITH archived AS (
                INSERT INTO \(table) (partition, ms, seq, entry_id, event, hash)
                SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                ON CONFLICT DO NOTHING
            )
            INSERT INTO \(self.facts) AS f (partition, room_id, message_id, sender_id, deleted, ms, seq, in_thread)
            SELECT $1, * FROM unnest($7::text[], $8::text[], $9::text[], $10::boolean[], $11::bigint[], $12::bigint[], $13::boolean[])
            ON CONFLICT (room_id, message_id) DO UPDATE SET
                sender_id = CASE WHEN f.sender_id = '' THEN EXCLUDED.sender_id ELSE f.sender_id END,
                deleted = f.deleted OR EXCLUDED.deleted,
                in_thread = f.in_thread OR EXCLUDED.in_thread,
                ms = CASE WHEN (EXCLUDED.ms, EXCLUDED.seq) > (f.ms, f.seq) THEN EXCLUDED.ms ELSE f.ms END,
                seq = CASE WHEN (EXCLUDED.ms, EXCLUDED.seq) > (f.ms, f.seq) THEN EXCLUDED.seq ELSE f.seq END
            """,
            [
                partition, postgresArray(ms), postgresArray(seq), postgresArray(ids), postgresArray(events), postgresArray(hashes),
                postgresArray(facts.rows.map(\.roomId)), postgresArray(facts.rows.map(\.messageId)),
                postgresArray(facts.rows.map(\.senderId)), postgresArray(facts.rows.map { $0.deleted ? "t" : "f" }),
                postgresArray(facts.rows.map { String($0.ms) }), postgresArray(facts.rows.map { String($0.seq) }),
                postgresArray(facts.rows.map { $0.inThread ? "t" : "f" }),
            ])
    }

    /// The message facts a batch of entries changes, folded: one row per message, its last change's entry.
    struct MessageFacts {
        struct Row {
            var roomId: String
            var messageId: String
            /// "" for a deletion whose message was archived in an earlier batch (the row there keeps its sender).
            var senderId: String
            var deleted: Bool
            var ms: UInt64
            var seq: UInt64
            var inThread = false
        }
        private(set) var rows: [Row] = []
        private var index: [String: Int] = [:]

        mutating func add(_ json: String, ms: UInt64, seq: UInt64) {
            // Only messages' sends and deletions change a record; the others are not decoded.
            guard json.contains("\"message.sent\"") || json.contains("\"message.deleted\""),
                let event = try? EventCodec.decode(json), let roomId = event.roomId
            else { return }
            switch event.data {
            case .messageSent(let sent):
                record(roomId, sent.messageId, sender: event.actorId, deleted: false, ms: ms, seq: seq, inThread: sent.threadRootId != nil)
            case .messageDeleted(let deleted):
                record(roomId, deleted.messageId, sender: "", deleted: true, ms: ms, seq: seq)
            default:
                return
            }
        }

        private mutating func record(
            _ roomId: String, _ messageId: String, sender: String, deleted: Bool, ms: UInt64, seq: UInt64, inThread: Bool = false
        ) {
            let key = roomId + "\u{0}" + messageId
            if let i = index[key] {
                rows[i].deleted = rows[i].deleted || deleted
                rows[i].inThread = rows[i].inThread || inThread
                if rows[i].senderId.isEmpty { rows[i].senderId = sender }
                (rows[i].ms, rows[i].seq) = (ms, seq)
            } else {
                index[key] = rows.count
                rows.append(
                    Row(roomId: roomId, messageId: messageId, senderId: sender, deleted: deleted, ms: ms, seq: seq, inThread: inThread))
            }
        }
    }

    /// The archived records of messages `ids` of `roomId` (who sent each, whether it is deleted); ids not archived are absent.
    public func messageRecords(roomId: String, ids: [String]) async throws -> [String: RoomState.MessageRecord] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await postgres.query(
            "SELECT message_id, sender_id, deleted, in_thread FROM \(facts) WHERE room_id = $1 AND message_id = ANY($2::text[])",
            [roomId, postgresArray(ids)])
        var records: [String: RoomState.MessageRecord] = [:]
        for row in rows {
            guard let id = row.string("message_id"), let sender = row.string("sender_id"), !sender.isEmpty else { continue }
            records[id] = RoomState.MessageRecord(
                senderId: sender, deleted: row.bool("deleted") ?? false, inThread: row.bool("in_thread") ?? false)
        }
        return records
    }

    /// A message's archived record, and the entry of its last change.
    public struct ChangedFact: Sendable, Equatable {
        public var roomId: String
        public var messageId: String
        public var record: RoomState.MessageRecord
        public var entryID: String
    }

    /// The facts of `partition` whose last change is after `after` and before `before` (both exclusive), in the order
    /// of those changes, at most `count`.
    public func changedFacts(partition: Int, after: String, before: String, count: Int) async throws -> [ChangedFact] {
        let (am, aseq) = StreamID.parse(after) ?? (0, 0)
        guard let (bm, bseq) = StreamID.parse(before) else { return [] }
        let rows = try await postgres.query(
            """
            SELECT room_id, message_id, sender_id, deleted, in_thread, ms, seq FROM \(facts)
            WHERE partition = $1 AND (ms, seq) > ($2, $3) AND (ms, seq) < ($4, $5) ORDER BY ms, seq LIMIT \(count)
            """, [partition, Int64(am), Int64(aseq), Int64(bm), Int64(bseq)])
        return rows.compactMap { row in
            guard let room = row.string("room_id"), let id = row.string("message_id"), let sender = row.string("sender_id"),
                let ms = row.string("ms"), let seq = row.string("seq")
            else { return nil }
            return ChangedFact(
                roomId: room, messageId: id,
                record: .init(senderId: sender, deleted: row.bool("deleted") ?? false, inThread: row.bool("in_thread") ?? false),
                entryID: "\(ms)-\(seq)")
        }
    }

    /// The entry up to which facts of `partition` left the guard state ("0-0": none yet).
    public func evictedThrough(partition: Int) async throws -> String {
        let rows = try await postgres.query("SELECT ms, seq FROM \(evicted) WHERE partition = $1", [partition])
        guard let row = rows.first, let ms = row.string("ms"), let seq = row.string("seq") else { return "0-0" }
        return "\(ms)-\(seq)"
    }

    /// Records that facts of `partition` changed up to `through` left the guard state; never moves back (an archiver that
    /// woke from a pause past its lease may report an older point).
    public func setEvicted(partition: Int, through: String) async throws {
        guard let (m, s) = StreamID.parse(through) else { return }
        try await postgres.query(
            """
            INSERT INTO \(evicted) (partition, ms, seq) VALUES ($1, $2, $3)
            ON CONFLICT (partition) DO UPDATE SET ms = EXCLUDED.ms, seq = EXCLUDED.seq
            WHERE (\(evicted).ms, \(evicted).seq) < (EXCLUDED.ms, EXCLUDED.seq)
            """, [partition, Int64(m), Int64(s)])
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
