import Drivers
import EventLog
import Events
import Foundation

/// One row or document that differs between a live read model and one rebuilt from the log.
public struct ReadModelDifference: Sendable, Equatable, CustomStringConvertible {
    /// Which side has the row or document: only the rebuilt one, only the live one, or both with other values.
    public enum Kind: String, Sendable {
        /// In the rebuilt model only: the live one lost it.
        case missing
        /// In the live model only: nothing in the log makes it.
        case unexpected
        /// In both, with other values in `fields`.
        case changed
    }

    /// `users`, `rooms`, `room_members` or `messages`.
    public var model: String
    /// The row's key (`id`, or `room_id/user_id`) or the document's `_id`.
    public var key: String
    /// Whether the live model lacks it, has it extra, or has other values; only `.changed` has `fields`.
    public var kind: Kind
    /// Each differing field: its name, the live value and the rebuilt value.
    public var fields: [(name: String, live: String, rebuilt: String)]

    /// One line for `parley-replay verify`'s report, naming the live value and what the log makes.
    public var description: String {
        switch kind {
        case .missing: return "\(model) \(key): missing from the live read model"
        case .unexpected: return "\(model) \(key): in the live read model but not made by the log"
        case .changed:
            return "\(model) \(key): " + fields.map { "\($0.name) is \($0.live), the log makes \($0.rebuilt)" }.joined(separator: "; ")
        }
    }

    /// Same model, key, kind and fields in the same order (tuples are not `Equatable`, hence written out).
    public static func == (a: Self, b: Self) -> Bool {
        a.model == b.model && a.key == b.key && a.kind == b.kind && a.fields.map(\.name) == b.fields.map(\.name)
            && a.fields.map(\.live) == b.fields.map(\.live) && a.fields.map(\.rebuilt) == b.fields.map(\.rebuilt)
    }
}

/// The comparison of one table or collection.
public struct ReadModelReport: Sendable {
    /// The table or collection compared: `users`, `rooms`, `room_members` or `messages`.
    public var model: String
    /// Rows or documents in the live model, all of them (skipped ones included).
    public var liveCount: Int
    /// Rows or documents in the model rebuilt from the log, all of them (skipped ones included).
    public var rebuiltCount: Int
    /// Every difference found, in key order.
    public var differences: [ReadModelDifference]
    /// Rows or documents not compared because events after the rebuilt position touch them.
    public var skipped: Int
}

/// What changed in the log after the position a scratch rebuild stopped at: rows and
/// documents these events touch may differ for that reason alone, so they are skipped.
public struct ChangedSince: Sendable {
    /// Rooms that events after the rebuilt position belong to: their rows, members and messages are skipped.
    public var rooms: Set<String> = []
    /// Users registered after the rebuilt position (their `users` rows are skipped) and users who blocked or unblocked
    /// someone since (their `user_blocks` rows are).
    public var users: Set<String> = []

    /// Collects the rooms and registered users of `events`, the log's events after the rebuilt position.
    public init(_ events: [LoggedEvent]) {
        for logged in events {
            if let room = logged.event.roomId { rooms.insert(room) }
            switch logged.event.data {
            case .userRegistered(let user): users.insert(user.userId)
            case .userBlocked, .userUnblocked: users.insert(logged.event.actorId)  // their `user_blocks` rows
            default: break
            }
        }
    }
}

/// Compares live read models with ones rebuilt from the log into a scratch area.
public enum ReadModelComparison {
    /// The metadata tables of `live` against `rebuilt`, row by row (every column).
    public static func metadata(live: MetadataProjector, rebuilt: MetadataProjector, skipping changed: ChangedSince) async throws
        -> [ReadModelReport]
    {
        try await compare(
            [
                ("users", ["id"], nil, "id"), ("rooms", ["id"], "id", nil), ("room_members", ["room_id", "user_id"], "room_id", nil),
                ("room_pins", ["room_id", "message_id"], "room_id", nil), ("user_blocks", ["user_id", "blocked_id"], nil, "user_id"),
                ("message_mentions", ["room_id", "user_id", "seq"], "room_id", nil),
            ], live: live.schema, rebuilt: rebuilt.schema, postgres: live.postgres, skipping: changed)
    }

    /// The search table of `live` against `rebuilt`, row by row: the text, the times and the tsvector made of it.
    public static func search(live: SearchProjector, rebuilt: SearchProjector, skipping changed: ChangedSince) async throws
        -> [ReadModelReport]
    {
        try await compare(
            [("search_messages", ["room_id", "message_id"], "room_id", nil)], live: live.schema, rebuilt: rebuilt.schema,
            postgres: live.postgres, skipping: changed)
    }

    /// Each table of schema `live` against the same table of `rebuilt`, every column; rows of a room or user `changed`
    /// names (by the `room` or `user` column) are skipped.
    private static func compare(
        _ tables: [(name: String, key: [String], room: String?, user: String?)], live: String, rebuilt: String,
        postgres: PostgresClient, skipping changed: ChangedSince
    ) async throws -> [ReadModelReport] {
        var reports: [ReadModelReport] = []
        for table in tables {
            let l = "\(live).\(table.name)"
            let r = "\(rebuilt).\(table.name)"
            let keys = table.key.map { "coalesce(l.\($0), r.\($0)) AS k_\($0)" }.joined(separator: ", ")
            let join = table.key.map { "l.\($0) = r.\($0)" }.joined(separator: " AND ")
            let order = table.key.map { "k_\($0)" }.joined(separator: ", ")
            let counts = try await postgres.query("SELECT (SELECT count(*) FROM \(l)) AS live, (SELECT count(*) FROM \(r)) AS rebuilt")
            let rows = try await postgres.query(
                """
                SELECT \(keys), to_jsonb(l)::text AS live, to_jsonb(r)::text AS rebuilt
                FROM \(l) l FULL JOIN \(r) r ON \(join)
                WHERE to_jsonb(l) IS DISTINCT FROM to_jsonb(r) ORDER BY \(order)
                """)
            var report = ReadModelReport(
                model: table.name, liveCount: counts.first?.int("live") ?? 0, rebuiltCount: counts.first?.int("rebuilt") ?? 0,
                differences: [], skipped: 0)
            for row in rows {
                let key = table.key.map { row.string("k_\($0)") ?? "" }
                if let column = table.room, changed.rooms.contains(row.string("k_\(column)") ?? "") {
                    report.skipped += 1
                    continue
                }
                if let column = table.user, changed.users.contains(row.string("k_\(column)") ?? "") {
                    report.skipped += 1
                    continue
                }
                report.differences.append(
                    difference(table.name, key: key.joined(separator: "/"), live: row.string("live"), rebuilt: row.string("rebuilt")))
            }
            reports.append(report)
        }
        return reports
    }

    static func difference(_ model: String, key: String, live: String?, rebuilt: String?) -> ReadModelDifference {
        guard let live else { return ReadModelDifference(model: model, key: key, kind: .missing, fields: []) }
        guard let rebuilt else { return ReadModelDifference(model: model, key: key, kind: .unexpected, fields: []) }
        let a = jsonObject(live)
        let b = jsonObject(rebuilt)
        let fields = Set(a.keys).union(b.keys).sorted().compactMap { name -> (String, String, String)? in
            let x = a[name] ?? "null"
            let y = b[name] ?? "null"
            return x == y ? nil : (name, x, y)
        }
        return ReadModelDifference(model: model, key: key, kind: .changed, fields: fields)
    }

    /// A JSON object's members, each value as compact JSON text.
    static func jsonObject(_ text: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [:] }
        return object.mapValues { value in
            if value is NSNull { return "null" }
            if let string = value as? String { return "\"\(string)\"" }
            if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
                return String(decoding: data, as: UTF8.self)
            }
            return "\(value)"
        }
    }

    /// The messages of `live` against `rebuilt`, document by document, on every field
    /// readers get (`MessageRecord`: body, edits, deletion, reply, times ...).
    public static func messages(live: MessagesProjector, rebuilt: MessagesProjector, skipping changed: ChangedSince) async throws
        -> ReadModelReport
    {
        let (liveCollection, rebuiltCollection) = (try await live.documents(), try await rebuilt.documents())
        async let liveDocuments = liveCollection.find(sort: ["_id": 1])
        async let rebuiltDocuments = rebuiltCollection.find(sort: ["_id": 1])
        let a = try await liveDocuments.map(MessageRecord.init)
        let b = try await rebuiltDocuments.map(MessageRecord.init)
        let liveByID = Dictionary(a.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
        let rebuiltByID = Dictionary(b.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
        var report = ReadModelReport(model: "messages", liveCount: a.count, rebuiltCount: b.count, differences: [], skipped: 0)
        for id in Set(liveByID.keys).union(rebuiltByID.keys).sorted() {
            let x = liveByID[id]
            let y = rebuiltByID[id]
            if x == y { continue }
            if changed.rooms.contains(x?.roomId ?? y?.roomId ?? "") {
                report.skipped += 1
                continue
            }
            guard let x else {
                report.differences.append(.init(model: "messages", key: id, kind: .missing, fields: []))
                continue
            }
            guard let y else {
                report.differences.append(.init(model: "messages", key: id, kind: .unexpected, fields: []))
                continue
            }
            let fields = zip(Mirror(reflecting: x).children, Mirror(reflecting: y).children).compactMap {
                l, r -> (String, String, String)? in
                let p = describe(l.value)
                let q = describe(r.value)
                return p == q ? nil : (l.label ?? "?", p, q)
            }
            report.differences.append(.init(model: "messages", key: id, kind: .changed, fields: fields))
        }
        return report
    }

    private static func describe(_ value: Any) -> String {
        if let date = value as? Date { return formatTimestamp(date) }
        if let optional = value as? Date? { return optional.map(formatTimestamp) ?? "null" }
        if let text = value as? String? { return text.map { "\"\($0)\"" } ?? "null" }
        return "\(value)"
    }
}
