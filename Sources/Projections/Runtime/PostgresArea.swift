import Drivers
import EventLog
import Foundation

/// The tables of one PostgreSQL read model in one schema, with its checkpoint table: what the metadata and search
/// projectors share. A batch and its checkpoint commit in one transaction, the checkpoint row locked first and
/// holding the newest writer's lease epoch; a schema other than the template copies the template's tables (made by
/// the migrations); a shadow area's tables are swapped in for the live ones in one transaction.
struct PostgresArea: Sendable {
    let postgres: PostgresClient
    /// The schema written to.
    let schema: String
    /// The schema whose tables (made by the migrations) another schema copies.
    let template: String
    /// The read model's tables, its checkpoint table among them: what `prepare` copies and `swap` moves.
    let tables: [String]
    /// The table of `(projector, partition, position, epoch, updated_at)` rows.
    let checkpoints: String

    /// `schema` and `template` must be bare identifiers (letters, digits, `_`): they are written into SQL, so anything
    /// else traps.
    init(postgres: PostgresClient, schema: String, template: String, tables: [String], checkpoints: String) {
        precondition(
            [schema, template].allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } },
            "schema must be an identifier")
        precondition(tables.contains(checkpoints), "the checkpoint table is one of the read model's tables")
        self.postgres = postgres
        self.schema = schema
        self.template = template
        self.tables = tables
        self.checkpoints = checkpoints
    }

    /// A schema other than the template gets the template's tables. In one transaction under an advisory lock:
    /// `CREATE ... IF NOT EXISTS` run by two processes at once can otherwise fail on PostgreSQL's catalog.
    func prepare() async throws {
        guard schema != template else { return }
        let (s, t, tables) = (schema, template, self.tables)
        try await postgres.withTransaction { c in
            try c.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["parley.prepare." + s])
            try c.execute("CREATE SCHEMA IF NOT EXISTS \(s)")
            for table in tables { try c.execute("CREATE TABLE IF NOT EXISTS \(s).\(table) (LIKE \(t).\(table) INCLUDING ALL)") }
        }
    }

    /// `projector`'s checkpoint for `partition`, committed with each batch; `0-0` when none.
    func checkpoint(_ projector: String, partition: Int) async throws -> String {
        try await postgres.query(
            "SELECT position FROM \(schema).\(checkpoints) WHERE projector = $1 AND partition = $2", [projector, partition]
        ).first?.string("position") ?? "0-0"
    }

    /// Records that lease epoch `epoch` now writes `partition` (the row keeps the highest epoch seen); throws
    /// `ProjectionFenced` when a newer one already writes.
    func fence(_ projector: String, partition: Int, epoch: Int64) async throws {
        let seen =
            try await postgres.query(
                """
                INSERT INTO \(schema).\(checkpoints) AS c (projector, partition, position, epoch, updated_at)
                VALUES ($1, $2, '0-0', $3, now())
                ON CONFLICT (projector, partition) DO UPDATE SET epoch = greatest(c.epoch, EXCLUDED.epoch)
                RETURNING epoch
                """, [projector, partition, epoch]
            ).first?.int("epoch").map(Int64.init) ?? 0
        if seen > epoch { throw ProjectionFenced(partition: partition, epoch: epoch, seen: seen) }
    }

    /// One transaction: locks `projector`'s checkpoint row of `partition` (refusing an older epoch before anything is
    /// written), hands `write` the events after the checkpoint (none: nothing is written), then moves the checkpoint
    /// to the last of them. A batch delivered twice changes nothing the second time.
    func apply(
        _ events: [LoggedEvent], projector: String, partition: Int, epoch: Int64,
        write: @escaping @Sendable (_ fresh: [LoggedEvent], _ connection: PostgresConnection) throws -> Void
    ) async throws {
        guard !events.isEmpty else { return }
        let s = schema
        let table = checkpoints
        try await postgres.withTransaction { c in
            let row = try c.query(
                "SELECT position, epoch FROM \(s).\(table) WHERE projector = $1 AND partition = $2 FOR UPDATE", [projector, partition]
            ).first
            let seen = row?.int("epoch").map(Int64.init) ?? 0
            if seen > epoch { throw ProjectionFenced(partition: partition, epoch: epoch, seen: seen) }
            let done = row?.string("position") ?? "0-0"
            let fresh = events.filter { StreamID.less(done, $0.entryID) }
            guard let last = fresh.last else { return }
            try write(fresh, c)
            try c.query(
                """
                INSERT INTO \(s).\(table) AS c (projector, partition, position, epoch, updated_at)
                VALUES ($1, $2, $3, $4, now())
                ON CONFLICT (projector, partition) DO UPDATE SET position = EXCLUDED.position, epoch = greatest(c.epoch, EXCLUDED.epoch),
                  updated_at = now()
                """, [projector, partition, last.entryID, epoch])
        }
    }

    /// Empties every table but the checkpoints, and `projector`'s checkpoints, in one transaction.
    func reset(_ projector: String) async throws {
        let s = schema
        let data = tables.filter { $0 != checkpoints }.map { "\(s).\($0)" }.joined(separator: ", ")
        let table = checkpoints
        try await postgres.withTransaction { c in
            try c.execute("TRUNCATE \(data)")
            try c.query("DELETE FROM \(s).\(table) WHERE projector = $1", [projector])
        }
    }

    /// Drops the schema with its tables (a shadow or scratch area; never the template the migrations made).
    func dropSchema() async throws {
        precondition(schema != template, "refusing to drop the template schema \(template)")
        let s = schema
        _ = try await postgres.withConnection { c in try c.execute("DROP SCHEMA IF EXISTS \(s) CASCADE") }
    }

    /// Whether the schema exists (a shadow left by an interrupted rebuild).
    func schemaExists() async throws -> Bool {
        try await postgres.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]).first != nil
    }

    /// Puts this (shadow) area's tables in place of `live`'s, in one transaction: readers wait the few milliseconds it
    /// takes, then see the new tables; they never see a mix. The new checkpoints keep the live ones' fencing epochs.
    /// The old tables go to the schema `retired`, dropped unless `keepOld`; this schema is dropped. Live writers must
    /// be held meanwhile (`ProjectionHold`), so that nothing they apply lands in the old tables.
    func swap(into live: PostgresArea, retired: String, keepOld: Bool) async throws {
        precondition(live.schema != schema && live.tables == tables, "a swap replaces another schema's tables of the same read model")
        let (s, l, checkpoints) = (schema, live.schema, self.checkpoints)
        // Writers lock the checkpoint row first, then the rest: same order here.
        let ordered = [checkpoints] + tables.filter { $0 != checkpoints }
        try await postgres.withTransaction { c in
            try c.execute("LOCK TABLE \(ordered.map { "\(l).\($0)" }.joined(separator: ", ")) IN ACCESS EXCLUSIVE MODE")
            try c.execute(
                """
                UPDATE \(s).\(checkpoints) n SET epoch = greatest(n.epoch, o.epoch)
                FROM \(l).\(checkpoints) o WHERE n.projector = o.projector AND n.partition = o.partition
                """)
            try c.execute("CREATE SCHEMA \(retired)")
            for table in ordered { try c.execute("ALTER TABLE \(l).\(table) SET SCHEMA \(retired)") }
            for table in ordered { try c.execute("ALTER TABLE \(s).\(table) SET SCHEMA \(l)") }
        }
        try await postgres.withConnection { c in
            try c.execute("DROP SCHEMA IF EXISTS \(s) CASCADE")
            if !keepOld { try c.execute("DROP SCHEMA IF EXISTS \(retired) CASCADE") }
        }
    }
}
