import Drivers
import Foundation

/// The search queries, beside the projector that owns `search_messages`: the messages matching a `SearchQuery` in the
/// rooms where the reader is a joined member now (the metadata projector's `room_members`, in the same schema), so a
/// member who left or was removed or banned finds nothing of that room any more.
public struct SearchReadModel: Sendable {
    let postgres: PostgresClient
    let schema: String

    /// Queries `schema`, where both the search and the metadata projectors write (`PARLEY_POSTGRES_SCHEMA`).
    public init(postgres: PostgresClient, schema: String = "public", timeoutMs: Int = 3000) {
        self.timeoutMs = max(1, timeoutMs)
        precondition(!schema.isEmpty && schema.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }, "schema must be an identifier")
        self.postgres = postgres
        self.schema = schema
    }

    /// The order of the results.
    public enum Order: String, Sendable, CaseIterable {
        /// Newest first.
        case time
        /// Best match first (`ts_rank`), newest first among equals.
        case rank
    }

    /// One message found.
    public struct Hit: Sendable, Equatable {
        public var roomId: String
        public var messageId: String
        public var seq: Int64
        public var senderId: String
        /// The text as the search table has it (the latest edit).
        public var body: String
        public var sentMs: Int64
        public var editedMs: Int64?
        /// `ts_rank` of the message for the query: higher is a better match.
        public var rank: Double
    }

    /// A page of results and where the next one starts (nil: this was the last).
    public struct Page: Sendable {
        public var hits: [Hit]
        public var next: SearchCursor?
    }

    /// How long one search may run in PostgreSQL before it is cancelled (SQLSTATE 57014): a query of very common words
    /// over a very large log must not hold a connection the projectors need.
    let timeoutMs: Int

    /// Runs `sql` in a transaction of its own with `statement_timeout` set to `timeoutMs`.
    private func timed(_ sql: String, _ parameters: [any PostgresBindable]) async throws -> PostgresRows {
        let timeout = timeoutMs
        return try await postgres.withTransaction { c in
            try c.execute("SET LOCAL statement_timeout = \(timeout)")
            return try c.query(sql, parameters)
        }
    }

    /// Rank pages stop after this many results: paging deeper by rank ranks every match again each time.
    public static let maxRankOffset = 1000

    /// The messages matching `query` that `userId` may read, `limit` at a time, in `order`, after `cursor`; only in
    /// `roomId` when given. A cursor of the other order starts from the beginning.
    public func search(
        _ query: SearchQuery, userId: String, roomId: String? = nil, order: Order = .time, after cursor: SearchCursor? = nil,
        limit: Int = 20
    ) async throws -> Page {
        let s = schema
        var parameters: [any PostgresBindable] = [query.tsquery, userId]
        var rooms = "SELECT room_id FROM \(s).room_members WHERE user_id = $2 AND state = 'joined'"
        if let roomId {
            parameters.append(roomId)
            rooms += " AND room_id = $\(parameters.count)"
        }
        let columns = """
            m.room_id, m.message_id, m.seq, m.sender_id, m.body, m.sent_ms, m.edited_ms, ts_rank(m.document, q.query)::float8 AS rank
            """
        let rows: PostgresRows
        var offset = 0
        switch order {
        case .time:
            var after = ""
            if case .time(let ms, let room, let seq) = cursor {
                parameters += [ms, room, seq]
                let n = parameters.count
                after = " AND (m.sent_ms, m.room_id, m.seq) < ($\(n - 2), $\(n - 1), $\(n))"
            }
            // One GIN lookup, then the reader's rooms, then the newest. Walking the reader's rooms one by one along
            // (room_id, sent_ms, seq) instead was measured too (docs/benchmarks.md, "Search"): 16 ms instead of 256 for
            // the commonest words, but 182 ms instead of 45 for short prefixes and 641 instead of 53 for phrases.
            rows = try await timed(
                """
                SELECT \(columns) FROM \(s).search_messages m, to_tsquery('simple', $1) AS q(query)
                WHERE m.document @@ q.query AND m.room_id IN (\(rooms))\(after)
                ORDER BY m.sent_ms DESC, m.room_id DESC, m.seq DESC
                LIMIT \(limit + 1)
                """, parameters)
        case .rank:
            if case .rank(let from) = cursor { offset = min(from, Self.maxRankOffset) }
            // Every match in the reader's rooms is ranked: its cost grows with how common the words are.
            rows = try await timed(
                """
                SELECT \(columns) FROM \(s).search_messages m, to_tsquery('simple', $1) AS q(query)
                WHERE m.document @@ q.query AND m.room_id IN (\(rooms))
                ORDER BY rank DESC, m.sent_ms DESC, m.room_id DESC, m.seq DESC
                LIMIT \(limit + 1) OFFSET \(offset)
                """, parameters)
        }
        let hits = rows.prefix(limit).map { row in
            Hit(
                roomId: row.string("room_id") ?? "", messageId: row.string("message_id") ?? "", seq: row.int64("seq") ?? 0,
                senderId: row.string("sender_id") ?? "", body: row.string("body") ?? "", sentMs: row.int64("sent_ms") ?? 0,
                editedMs: row.int64("edited_ms"), rank: row.string("rank").flatMap(Double.init) ?? 0)
        }
        guard rows.count > limit, let last = hits.last else { return Page(hits: Array(hits), next: nil) }
        switch order {
        case .time: return Page(hits: Array(hits), next: .time(sentMs: last.sentMs, roomId: last.roomId, seq: last.seq))
        case .rank:
            let next = offset + hits.count
            return Page(hits: Array(hits), next: next < Self.maxRankOffset ? .rank(offset: next) : nil)
        }
    }
}
