import Drivers
import EventLog
import Events
import Foundation

/// Users, rooms, members (roles, invite state, `last_read_seq`), the last message of each
/// room and the checkpoints, in PostgreSQL. A batch and its checkpoint commit in one
/// transaction and events at or before the checkpoint are skipped, so a batch delivered
/// twice changes nothing. Message sends and read receipts, the bulk of any log, are folded
/// into two array statements per batch.
public struct MetadataProjector: Projector {
    /// `metadata` by default: the consumer group, its `projector_checkpoints` rows, the metrics label; a shadow keeps the
    /// live projector's name.
    public let name: String
    /// The PostgreSQL schema written to: `public` live, another for shadow rebuilds.
    public let schema: String
    /// The scheduler priority of its batches: `.live` for the server, `.rebuild` for the replayer's shadow and verify copies.
    public let priority: ProjectionPriority
    /// Users, rooms, members, last messages, read receipts and pins live in these tables; reactions do not.
    public let eventTypes = Set(EventType.allCases).subtracting([.reactionAdded, .reactionRemoved])
    let postgres: PostgresClient
    /// Its tables in `schema`, with the checkpoints.
    let area: PostgresArea

    /// `schema` and `template` must be bare identifiers (letters, digits, `_`): they are written into SQL, so anything else traps.
    public init(
        postgres: PostgresClient, schema: String = "public", name: String = "metadata", priority: ProjectionPriority = .live,
        template: String = "public"
    ) {
        self.area = PostgresArea(
            postgres: postgres, schema: schema, template: template, tables: Self.tables, checkpoints: "projector_checkpoints")
        self.postgres = postgres
        self.schema = schema
        self.name = name
        self.priority = priority
    }

    /// The read model's tables, the same in every schema: what `prepare` copies from the template and `swap` moves.
    public static let tables = ["users", "rooms", "room_members", "room_pins", "user_blocks", "message_mentions", "projector_checkpoints"]

    /// A schema other than the template gets the template's tables (made by the migrations).
    public func prepare() async throws { try await area.prepare() }

    /// This projector's row of `<schema>.projector_checkpoints` for `partition`, committed with each batch; `0-0` when none.
    public func checkpoint(partition: Int) async throws -> String { try await area.checkpoint(name, partition: partition) }

    /// Records that lease epoch `epoch` now writes `partition` (the checkpoint row keeps the highest epoch seen): from
    /// then on a transaction of an older epoch is refused. Throws `ProjectionFenced` when a newer one already writes.
    public func fence(partition: Int, epoch: Int64) async throws { try await area.fence(name, partition: partition, epoch: epoch) }

    /// One transaction: the events after the stored checkpoint (older ones are skipped), folded into array statements, then
    /// the new checkpoint. A batch delivered twice changes nothing the second time. A batch of an older lease epoch than
    /// the checkpoint row holds is refused (`ProjectionFenced`) before it writes anything.
    public func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64) async throws {
        let s = schema
        try await area.apply(events, projector: name, partition: partition, epoch: epoch) { fresh, c in
            var batch = Batch()
            for logged in fresh { try Self.apply(logged.event, schema: s, connection: c, batch: &batch) }
            try batch.flush(schema: s, connection: c)
        }
    }

    /// What a batch folds before writing: the newest message per room, the highest read
    /// seq per member, and the edits and deletions to apply after the sends, in order.
    struct Batch {
        /// A member's changes in this batch, folded in log order: an insert-or-update
        /// (invite, join, creation) or, when none came, an update of an existing row
        /// (decline, leave, removal, role change). `nil` fields are left as they are.
        struct MemberChange {
            var upsert: Bool
            var role: Role?
            var state: MemberState?
            var invitedBy: String?
            var invitedAt: Date?
            var at: Date

            mutating func fold(_ next: MemberChange) {
                upsert = upsert || next.upsert
                role = next.role ?? role
                state = next.state ?? state
                invitedBy = next.invitedBy ?? invitedBy
                invitedAt = next.invitedAt ?? invitedAt
                at = next.at
            }
        }
        var members: [String: (room: String, user: String, change: MemberChange)] = [:]
        var lastMessages: [String: (seq: Int64, id: String, by: String, body: String, at: Date)] = [:]
        var reads: [String: (room: String, user: String, seq: Int64, at: Date)] = [:]
        var afterSends: [(sql: String, parameters: [any PostgresBindable])] = []

        mutating func member(room: String, user: String, _ change: MemberChange) {
            let key = room + " " + user
            if var folded = members[key] {
                folded.change.fold(change)
                members[key] = folded
            } else {
                members[key] = (room, user, change)
            }
        }

        mutating func read(room: String, user: String, seq: Int64, at: Date) {
            let key = room + " " + user
            if (reads[key]?.seq ?? -1) < seq { reads[key] = (room, user, seq, at) }
        }

        func flush(schema s: String, connection c: PostgresConnection) throws {
            // Members first: read receipts below update their rows.
            let upserts = members.values.filter(\.change.upsert)
            if !upserts.isEmpty {
                // An upsert always has a role and a state (its own, or a later change's).
                try c.query(
                    """
                    INSERT INTO \(s).room_members (room_id, user_id, role, state, invited_by, invited_at, updated_at)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
                    ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role, state = EXCLUDED.state,
                        invited_by = COALESCE(EXCLUDED.invited_by, \(s).room_members.invited_by),
                        invited_at = COALESCE(EXCLUDED.invited_at, \(s).room_members.invited_at), updated_at = EXCLUDED.updated_at
                    """,
                    [
                        postgresArray(upserts.map(\.room)), postgresArray(upserts.map(\.user)),
                        postgresArray(upserts.map { $0.change.role?.rawValue ?? Role.member.rawValue }),
                        postgresArray(upserts.map { $0.change.state?.rawValue ?? MemberState.joined.rawValue }),
                        postgresArray(upserts.map(\.change.invitedBy)),
                        postgresArray(upserts.map { $0.change.invitedAt.map(formatTimestamp) }),
                        postgresArray(upserts.map { formatTimestamp($0.change.at) }),
                    ])
            }
            let updates = members.values.filter { !$0.change.upsert }
            if !updates.isEmpty {
                try c.query(
                    """
                    UPDATE \(s).room_members AS m SET role = COALESCE(v.role, m.role), state = COALESCE(v.state, m.state), updated_at = v.at
                    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS v(room, usr, role, state, at)
                    WHERE m.room_id = v.room AND m.user_id = v.usr
                    """,
                    [
                        postgresArray(updates.map(\.room)), postgresArray(updates.map(\.user)),
                        postgresArray(updates.map(\.change.role?.rawValue)),
                        postgresArray(updates.map(\.change.state?.rawValue)), postgresArray(updates.map { formatTimestamp($0.change.at) }),
                    ])
            }
            if !lastMessages.isEmpty {
                let rows = Array(lastMessages)
                try c.query(
                    """
                    UPDATE \(s).rooms AS r SET last_seq = v.seq, last_message_id = v.mid, last_message_by = v.by,
                        last_message_body = v.body, last_message_at = v.at, last_message_deleted = false
                    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
                        AS v(id, seq, mid, by, body, at)
                    WHERE r.id = v.id AND r.last_seq < v.seq
                    """,
                    [
                        postgresArray(rows.map(\.key)), postgresArray(rows.map { String($0.value.seq) }),
                        postgresArray(rows.map(\.value.id)), postgresArray(rows.map(\.value.by)),
                        postgresArray(rows.map(\.value.body)), postgresArray(rows.map { formatTimestamp($0.value.at) }),
                    ])
            }
            if !reads.isEmpty {
                let rows = Array(reads.values)
                try c.query(
                    """
                    UPDATE \(s).room_members AS m SET last_read_seq = v.seq, last_read_at = v.at
                    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS v(room, usr, seq, at)
                    WHERE m.room_id = v.room AND m.user_id = v.usr AND m.last_read_seq < v.seq
                    """,
                    [
                        postgresArray(rows.map(\.room)), postgresArray(rows.map(\.user)), postgresArray(rows.map { String($0.seq) }),
                        postgresArray(rows.map { formatTimestamp($0.at) }),
                    ])
            }
            for statement in afterSends { try c.query(statement.sql, statement.parameters) }
        }
    }

    static func apply(_ event: Event, schema s: String, connection c: PostgresConnection, batch: inout Batch) throws {
        let room = event.roomId ?? ""
        let at = event.at
        func member(_ userId: String, role: Role, state: MemberState, invitedBy: String? = nil) {
            batch.member(
                room: room, user: userId,
                .init(upsert: true, role: role, state: state, invitedBy: invitedBy, invitedAt: invitedBy == nil ? nil : at, at: at))
        }
        func setState(_ userId: String, _ state: MemberState) {
            batch.member(room: room, user: userId, .init(upsert: false, role: nil, state: state, invitedBy: nil, invitedAt: nil, at: at))
        }
        switch event.data {
        case .userRegistered(let user):
            try c.query(
                """
                INSERT INTO \(s).users (id, username, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (id) DO NOTHING
                """, [user.userId, user.username, user.displayName, user.passwordHash, at])
        case .roomCreated(let created):
            try c.query(
                """
                INSERT INTO \(s).rooms (id, kind, name, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (id) DO NOTHING
                """, [room, created.kind.rawValue, created.name, event.actorId, at])
            switch created.kind {
            case .group: member(event.actorId, role: .owner, state: .joined)
            case .direct: for userId in created.members ?? [] { member(userId, role: .member, state: .joined) }
            }
        case .memberInvited(let m):
            member(m.userId, role: m.role ?? .member, state: .invited, invitedBy: event.actorId)
        case .memberJoined(let m):
            member(m.userId, role: m.role ?? .member, state: .joined)
        case .inviteDeclined(let m): setState(m.userId, .declined)
        case .memberLeft(let m): setState(m.userId, .left)
        case .memberRemoved(let m): setState(m.userId, .removed)
        case .memberRoleChanged(let m):
            batch.member(
                room: room, user: m.userId,
                .init(upsert: false, role: m.role ?? .member, state: nil, invitedBy: nil, invitedAt: nil, at: at))
        case .roomRenamed(let renamed):
            try c.query("UPDATE \(s).rooms SET name = $2 WHERE id = $1", [room, renamed.name])
        case .messageSent(let sent):
            let seq = event.seq ?? 0
            if (batch.lastMessages[room]?.seq ?? -1) < seq {
                batch.lastMessages[room] = (seq, sent.messageId, event.actorId, sent.body, at)
            }
            batch.read(room: room, user: event.actorId, seq: seq, at: at)  // what I send, I have read
            if let mentions = sent.mentions, !mentions.isEmpty {
                try c.query(
                    """
                    INSERT INTO \(s).message_mentions (room_id, user_id, seq, message_id)
                    SELECT $1, u, $2, $3 FROM unnest($4::text[]) AS u ON CONFLICT DO NOTHING
                    """, [room, seq, sent.messageId, postgresArray(mentions)])
            }
        case .roomRead(let read):
            batch.read(room: room, user: event.actorId, seq: read.seq, at: at)
        case .messagePinned(let pin):
            try c.query(
                """
                INSERT INTO \(s).room_pins (room_id, message_id, pinned_by, pinned_at) VALUES ($1, $2, $3, $4)
                ON CONFLICT (room_id, message_id) DO NOTHING
                """, [room, pin.messageId, event.actorId, at])
        case .messageUnpinned(let pin):
            try c.query("DELETE FROM \(s).room_pins WHERE room_id = $1 AND message_id = $2", [room, pin.messageId])
        case .reactionAdded, .reactionRemoved:
            break
        case .memberBanned(let m):
            // The state goes with the batch's other membership changes; the ban's details after them, in log order.
            member(m.userId, role: .member, state: .banned)
            batch.afterSends.append(
                (
                    """
                    UPDATE \(s).room_members SET banned_by = $3, ban_reason = $4, banned_at = $5, muted_until = NULL
                    WHERE room_id = $1 AND user_id = $2
                    """, [room, m.userId, event.actorId, m.reason, at]
                ))
        case .memberUnbanned(let m):
            setState(m.userId, .left)
            batch.afterSends.append(
                (
                    "UPDATE \(s).room_members SET banned_by = NULL, ban_reason = NULL, banned_at = NULL WHERE room_id = $1 AND user_id = $2",
                    [room, m.userId]
                ))
        case .memberMuted(let m):
            batch.afterSends.append(
                (
                    "UPDATE \(s).room_members SET muted_until = $3::timestamptz WHERE room_id = $1 AND user_id = $2",
                    [room, m.userId, m.until.map(formatTimestamp) ?? "infinity"]
                ))
        case .memberUnmuted(let m):
            batch.afterSends.append(
                ("UPDATE \(s).room_members SET muted_until = NULL WHERE room_id = $1 AND user_id = $2", [room, m.userId]))
        case .userBlocked(let block):
            try c.query(
                """
                INSERT INTO \(s).user_blocks (user_id, blocked_id, blocked_at) VALUES ($1, $2, $3)
                ON CONFLICT (user_id, blocked_id) DO NOTHING
                """, [event.actorId, block.userId, at])
        case .userUnblocked(let block):
            try c.query("DELETE FROM \(s).user_blocks WHERE user_id = $1 AND blocked_id = $2", [event.actorId, block.userId])
        case .messageEdited(let edited):
            batch.afterSends.append(
                (
                    "UPDATE \(s).rooms SET last_message_body = $3 WHERE id = $1 AND last_message_id = $2",
                    [room, edited.messageId, edited.body]
                ))
        case .messageDeleted(let deleted):
            batch.afterSends.append(
                ("DELETE FROM \(s).message_mentions WHERE room_id = $1 AND message_id = $2", [room, deleted.messageId]))
            batch.afterSends.append(
                (
                    "UPDATE \(s).rooms SET last_message_body = NULL, last_message_deleted = true WHERE id = $1 AND last_message_id = $2",
                    [room, deleted.messageId]
                ))
        }
    }
}
