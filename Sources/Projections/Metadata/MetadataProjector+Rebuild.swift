import Drivers
import Foundation

extension MetadataProjector {
    /// Empties the read model and this projector's checkpoints, for a rebuild in place.
    public func reset() async throws {
        let s = schema
        let name = self.name
        try await prepare()
        try await postgres.withTransaction { c in
            try c.execute("TRUNCATE \(s).users, \(s).rooms, \(s).room_members, \(s).room_pins, \(s).user_blocks, \(s).message_mentions")
            try c.query("DELETE FROM \(s).projector_checkpoints WHERE projector = $1", [name])
        }
    }

    /// Drops this projector's schema with its tables (a shadow or scratch area; never the
    /// template the migrations made).
    public func dropSchema() async throws {
        precondition(schema != template, "refusing to drop the template schema \(template)")
        let s = schema
        try await postgres.withConnection { c in try c.execute("DROP SCHEMA IF EXISTS \(s) CASCADE") }
    }

    /// Whether this projector's schema exists (a shadow left by an interrupted rebuild).
    public func schemaExists() async throws -> Bool {
        try await postgres.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]).first != nil
    }

    /// Puts this (shadow) projector's tables in place of `live`'s, in one transaction:
    /// readers wait the few milliseconds it takes, then see the new tables; they never see
    /// a mix. The old tables go to a schema named `<live>_retired_<time>`, which is
    /// dropped unless `keepOld`; returns that name. Live writers must be held meanwhile
    /// (`ProjectionHold`), so that nothing they apply lands in the old tables.
    @discardableResult
    public func swap(into live: MetadataProjector, keepOld: Bool = false) async throws -> String {
        precondition(live.schema != schema && live.name == name, "a swap replaces another schema's tables of the same projector")
        let s = schema
        let l = live.schema
        let retired = "\(l)_retired_\(Int(Date().timeIntervalSince1970))"
        // The live projector locks projector_checkpoints first, then the rest: same order here.
        let tables = ["projector_checkpoints"] + Self.tables.filter { $0 != "projector_checkpoints" }
        try await postgres.withTransaction { c in
            try c.execute("LOCK TABLE \(tables.map { "\(l).\($0)" }.joined(separator: ", ")) IN ACCESS EXCLUSIVE MODE")
            // The new tables keep the live ones' fencing epochs: a former lease holder is refused there too.
            try c.execute(
                """
                UPDATE \(s).projector_checkpoints n SET epoch = greatest(n.epoch, o.epoch)
                FROM \(l).projector_checkpoints o WHERE n.projector = o.projector AND n.partition = o.partition
                """)
            try c.execute("CREATE SCHEMA \(retired)")
            for table in tables { try c.execute("ALTER TABLE \(l).\(table) SET SCHEMA \(retired)") }
            for table in tables { try c.execute("ALTER TABLE \(s).\(table) SET SCHEMA \(l)") }
        }
        try await postgres.withConnection { c in
            try c.execute("DROP SCHEMA IF EXISTS \(s) CASCADE")
            if !keepOld { try c.execute("DROP SCHEMA IF EXISTS \(retired) CASCADE") }
        }
        return retired
    }
}
