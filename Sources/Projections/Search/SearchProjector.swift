import Drivers
import EventLog
import Events
import Foundation

/// The full-text read model: one PostgreSQL row per message that is not deleted (`search_messages`), its text indexed as a
/// `simple` tsvector under a GIN index, with checkpoints of its own (`search_checkpoints`), so that it is rebuilt,
/// verified and swapped apart from the metadata tables beside it. A third projector over the same log: a new server
/// starts it from the log's beginning (the archive first) like any new read model. An edit replaces the row's text, a
/// deletion removes the row; a batch and its checkpoint commit in one transaction, so a batch delivered twice changes
/// nothing.
public struct SearchProjector: Projector {
    /// `search` by default: the consumer group, its checkpoint rows, the metrics label; a shadow keeps the live name.
    public let name: String
    /// The PostgreSQL schema its tables are in: the metadata schema live, `<schema>_search_<area>` for a shadow or scratch.
    public let schema: String
    /// `.live` for the server, `.rebuild` for the replayer's shadow and verify copies.
    public let priority: ProjectionPriority
    /// Only the events that change a message's text or existence.
    public let eventTypes: Set<EventType> = [.messageSent, .messageEdited, .messageDeleted]
    let postgres: PostgresClient
    let area: PostgresArea

    /// The read model's tables, in every schema it has: what `prepare` copies from the template and a swap moves.
    public static let tables = ["search_messages", "search_checkpoints"]

    /// `schema` and `template` must be bare identifiers (letters, digits, `_`): they are written into SQL.
    public init(
        postgres: PostgresClient, schema: String = "public", name: String = "search", priority: ProjectionPriority = .live,
        template: String = "public"
    ) {
        self.postgres = postgres
        self.schema = schema
        self.name = name
        self.priority = priority
        self.area = PostgresArea(
            postgres: postgres, schema: schema, template: template, tables: Self.tables, checkpoints: "search_checkpoints")
    }

    /// A schema other than the template gets the template's tables (made by migration 007).
    public func prepare() async throws { try await area.prepare() }

    /// The entry id up to which `partition` is indexed.
    public func checkpoint(partition: Int) async throws -> String { try await area.checkpoint(name, partition: partition) }

    /// Records that lease epoch `epoch` now writes `partition`; throws `ProjectionFenced` when a newer one already does.
    public func fence(partition: Int, epoch: Int64) async throws { try await area.fence(name, partition: partition, epoch: epoch) }

    /// One transaction: the sends of the batch in one array insert, then its edits and deletions in log order (an edit or a
    /// deletion of a message sent in the same batch comes after its insert), then the checkpoint.
    public func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64) async throws {
        let s = schema
        try await area.apply(events, projector: name, partition: partition, epoch: epoch) { fresh, c in
            var sends: [(room: String, id: String, seq: Int64, sender: String, body: String, ms: Int64)] = []
            var later: [(sql: String, parameters: [any PostgresBindable])] = []
            func flushSends() throws {
                guard !sends.isEmpty else { return }
                try c.query(
                    """
                    INSERT INTO \(s).search_messages (room_id, message_id, seq, sender_id, body, sent_ms)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
                    ON CONFLICT (room_id, message_id) DO NOTHING
                    """,
                    [
                        postgresArray(sends.map(\.room)), postgresArray(sends.map(\.id)), postgresArray(sends.map { String($0.seq) }),
                        postgresArray(sends.map(\.sender)), postgresArray(sends.map(\.body)), postgresArray(sends.map { String($0.ms) }),
                    ])
                sends = []
            }
            for logged in fresh {
                let event = logged.event
                guard let room = event.roomId else { continue }
                switch event.data {
                case .messageSent(let sent):
                    sends.append((room, sent.messageId, event.seq ?? 0, event.actorId, sent.body, unixMilliseconds(event.at)))
                case .messageEdited(let edited):
                    later.append(
                        (
                            "UPDATE \(s).search_messages SET body = $3, edited_ms = $4 WHERE room_id = $1 AND message_id = $2",
                            [room, edited.messageId, edited.body, unixMilliseconds(event.at)]
                        ))
                case .messageDeleted(let deleted):
                    later.append(("DELETE FROM \(s).search_messages WHERE room_id = $1 AND message_id = $2", [room, deleted.messageId]))
                default: continue
                }
            }
            // Sends first: an edit or deletion always follows its message's send in the log, so running them after every
            // send of the batch keeps their order; a send never follows an edit of the same message.
            try flushSends()
            for statement in later { try c.query(statement.sql, statement.parameters) }
        }
    }

    // MARK: - Rebuilds

    /// Empties the read model and this projector's checkpoints, for a rebuild in place.
    public func reset() async throws {
        try await prepare()
        try await area.reset(name)
    }

    /// Drops this (shadow or scratch) schema; never the template.
    public func dropSchema() async throws { try await area.dropSchema() }

    /// Whether this projector's schema exists (a shadow left by an interrupted rebuild).
    public func schemaExists() async throws -> Bool { try await area.schemaExists() }

    /// Puts this (shadow) projector's tables in place of `live`'s in one transaction (live writes held meanwhile); the
    /// old ones go to `<live>_sretired_<time>` (as short as the metadata's `_retired_`, so it fits PostgreSQL's 63 bytes),
    /// dropped unless `keepOld`. Returns that name.
    @discardableResult
    public func swap(into live: SearchProjector, keepOld: Bool = false) async throws -> String {
        precondition(live.name == name, "a swap replaces the tables of the same projector")
        let retired = "\(live.schema)_sretired_\(Int(Date().timeIntervalSince1970))"
        try await area.swap(into: live.area, retired: retired, keepOld: keepOld)
        return retired
    }
}
