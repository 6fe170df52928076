import Drivers
import Events
import Foundation

/// A user as others see them (never the password hash).
public struct UserRecord: Codable, Sendable, Equatable {
    /// The user's id (`UserRegistered.userId`).
    public var id: String
    /// Lowercased and unique: what logins and lookups by name use.
    public var username: String
    /// The name shown to others.
    public var displayName: String
    /// When they registered (the `user.registered` event's `at`).
    public var createdAt: Date
}

/// A room's own fields.
public struct RoomRecord: Codable, Sendable, Equatable {
    /// The room's id: `r-…` for a group, `d-…` for a direct room.
    public var id: String
    /// Group or direct; a direct room has no name and has its two members from the start.
    public var kind: RoomKind
    /// The group's current name; nil for a direct room.
    public var name: String?
    /// Who created it: a group's first owner (ownership may have passed on since), or a direct room's first sender.
    public var createdBy: String
    /// When it was created (the `room.created` event's `at`).
    public var createdAt: Date
    /// The seq of its last message (0: none yet).
    public var lastSeq: Int64
}

/// A member of a room as the read model holds them.
public struct MemberRecord: Codable, Sendable, Equatable {
    /// The member's user id.
    public var userId: String
    /// Their role in the room (both users of a direct room are `member`).
    public var role: Role
    /// Where they stand; only a joined member may read the room.
    public var state: MemberState
    /// The highest seq they have read (a receipt, or a message they sent); 0 before any.
    public var lastReadSeq: Int64
    /// Whether they are muted (an expired mute is not).
    public var muted: Bool = false
    /// When their mute ends; nil when not muted, or muted until unmuted.
    public var mutedUntil: Date?
}

/// How far one member has read a room.
public struct ReceiptRecord: Codable, Sendable, Equatable {
    /// The reader.
    public var userId: String
    /// The last message they have read (a receipt, or a message they sent).
    public var seq: Int64
    /// When their position last moved; nil for positions projected before the read model kept it.
    public var at: Date?
}

/// A user banned from a room.
public struct BanRecord: Codable, Sendable, Equatable {
    /// Who is banned.
    public var userId: String
    /// Who banned them.
    public var bannedBy: String?
    /// Why, in the banner's words; nil when none was given.
    public var reason: String?
    /// When.
    public var at: Date?
}

/// A user someone blocks.
public struct BlockRecord: Codable, Sendable, Equatable {
    /// The user blocked.
    public var userId: String
    /// Since when.
    public var at: Date
}

/// One pinned message of a room.
public struct PinRecord: Codable, Sendable, Equatable {
    /// The message pinned.
    public var messageId: String
    /// Who pinned it.
    public var pinnedBy: String
    /// When.
    public var pinnedAt: Date
}

/// The last message of a room, for room lists.
public struct LastMessage: Codable, Sendable, Equatable {
    /// The message's id, to fetch it whole from the messages read model.
    public var id: String
    /// Its seq, the room's `lastSeq`.
    public var seq: Int64
    /// Who sent it.
    public var senderId: String
    /// nil once the message was deleted.
    public var body: String?
    /// When it was sent; "my rooms" lists the most recently active first by it.
    public var sentAt: Date
    /// Whether it was deleted since it was sent; `body` is nil then.
    public var deleted: Bool
}

/// One line of "my rooms".
public struct RoomSummary: Codable, Sendable, Equatable {
    /// The room's own fields.
    public var room: RoomRecord
    /// Nil while the room has no message.
    public var lastMessage: LastMessage?
    /// Messages after the user's last read one (`lastSeq - lastReadSeq`, never below 0).
    public var unreadCount: Int64
    /// The asking user's role in the room.
    public var myRole: Role
    /// Unread messages that mention the asking user (deleted ones left out).
    public var mentionCount: Int64 = 0
}

/// A pending invite of a user.
public struct InviteRecord: Codable, Sendable, Equatable {
    /// The room the user is invited to; they join or decline it by this id.
    public var roomId: String
    /// The group's current name.
    public var roomName: String?
    /// Who invited them (the `member.invited` event's actor).
    public var invitedBy: String?
    /// When; nil only for rows projected before migration 002 added `invited_at` and not rebuilt since.
    public var invitedAt: Date?
}

/// The queries over the metadata read model, beside the projector that owns its schema.
public struct MetadataReadModel: Sendable {
    let postgres: PostgresClient
    let schema: String

    /// Queries `schema` (`PARLEY_POSTGRES_SCHEMA`, `public` by default), the one the metadata projector writes.
    public init(postgres: PostgresClient, schema: String = "public") {
        self.postgres = postgres
        self.schema = schema
    }

    /// The user with that id; nil when there is none (or their registration is not projected yet).
    public func user(id: String) async throws -> UserRecord? {
        try await postgres.query("SELECT * FROM \(schema).users WHERE id = $1", [id]).first.map(Self.user)
    }

    /// Looks the name up lowercased, as usernames are stored; nil when nobody has it (or not projected yet).
    public func user(username: String) async throws -> UserRecord? {
        try await postgres.query("SELECT * FROM \(schema).users WHERE username = $1", [username.lowercased()]).first.map(Self.user)
    }

    /// A user and their password hash, for logging in.
    public func credentials(username: String) async throws -> (user: UserRecord, passwordHash: String)? {
        guard let row = try await postgres.query("SELECT * FROM \(schema).users WHERE username = $1", [username.lowercased()]).first,
            let hash = row.string("password_hash")
        else { return nil }
        return (Self.user(row), hash)
    }

    /// The rooms `userId` is a joined member of, most recently active first, with the last
    /// message, the unread count and the user's role.
    public func rooms(of userId: String) async throws -> [RoomSummary] {
        let rows = try await postgres.query(
            """
            SELECT r.*, m.role AS my_role, m.last_read_seq,
                (SELECT count(*) FROM \(schema).message_mentions x
                 WHERE x.room_id = m.room_id AND x.user_id = m.user_id AND x.seq > m.last_read_seq) AS mention_count
            FROM \(schema).room_members m
            JOIN \(schema).rooms r ON r.id = m.room_id
            WHERE m.user_id = $1 AND m.state = 'joined'
            ORDER BY COALESCE(r.last_message_at, r.created_at) DESC, r.id
            """, [userId])
        return rows.map { row in
            let room = Self.room(row)
            var last: LastMessage?
            if let id = row.string("last_message_id"), let at = row.date("last_message_at") {
                last = LastMessage(
                    id: id, seq: room.lastSeq, senderId: row.string("last_message_by") ?? "", body: row.string("last_message_body"),
                    sentAt: at, deleted: row.bool("last_message_deleted") ?? false)
            }
            let read = row.int64("last_read_seq") ?? 0
            return RoomSummary(
                room: room, lastMessage: last, unreadCount: max(0, room.lastSeq - read),
                myRole: Role(rawValue: row.string("my_role") ?? "") ?? .member, mentionCount: row.int64("mention_count") ?? 0)
        }
    }

    /// The room's own fields; nil when there is no such room (or it is not projected yet).
    public func room(id: String) async throws -> RoomRecord? {
        try await postgres.query("SELECT * FROM \(schema).rooms WHERE id = $1", [id]).first.map(Self.room)
    }

    /// The joined and invited members of a room.
    public func members(of roomId: String) async throws -> [MemberRecord] {
        try await postgres.query(
            "SELECT * FROM \(schema).room_members WHERE room_id = $1 AND state IN ('joined', 'invited') ORDER BY updated_at, user_id",
            [roomId]
        ).map(Self.member)
    }

    /// One user's standing in a room (any state), nil when they never had one.
    public func membership(roomId: String, userId: String) async throws -> MemberRecord? {
        try await postgres.query(
            "SELECT * FROM \(schema).room_members WHERE room_id = $1 AND user_id = $2", [roomId, userId]
        ).first.map(Self.member)
    }

    /// Invites waiting for `userId`'s answer.
    public func invites(of userId: String) async throws -> [InviteRecord] {
        try await postgres.query(
            """
            SELECT m.room_id, r.name, m.invited_by, m.invited_at FROM \(schema).room_members m
            JOIN \(schema).rooms r ON r.id = m.room_id WHERE m.user_id = $1 AND m.state = 'invited' ORDER BY m.invited_at
            """, [userId]
        ).map { row in
            InviteRecord(
                roomId: row.string("room_id") ?? "", roomName: row.string("name"), invitedBy: row.string("invited_by"),
                invitedAt: row.date("invited_at"))
        }
    }

    /// Where each joined member of a room has read up to, furthest first: those who read nothing yet are left out.
    public func receipts(roomId: String) async throws -> [ReceiptRecord] {
        try await postgres.query(
            """
            SELECT user_id, last_read_seq, last_read_at FROM \(schema).room_members
            WHERE room_id = $1 AND state = 'joined' AND last_read_seq > 0 ORDER BY last_read_seq DESC, user_id
            """, [roomId]
        ).map { row in
            ReceiptRecord(userId: row.string("user_id") ?? "", seq: row.int64("last_read_seq") ?? 0, at: row.date("last_read_at"))
        }
    }

    /// A room's pinned messages, most recently pinned first (at most `maxPinsPerRoom` by the rules).
    public func pins(roomId: String) async throws -> [PinRecord] {
        try await postgres.query(
            """
            SELECT message_id, pinned_by, pinned_at FROM \(schema).room_pins WHERE room_id = $1 ORDER BY pinned_at DESC, message_id
            """, [roomId]
        ).map { row in
            PinRecord(
                messageId: row.string("message_id") ?? "", pinnedBy: row.string("pinned_by") ?? "",
                pinnedAt: row.date("pinned_at") ?? Date(timeIntervalSince1970: 0))
        }
    }

    /// The users banned from a room, latest first.
    public func bans(roomId: String) async throws -> [BanRecord] {
        try await postgres.query(
            """
            SELECT user_id, banned_by, ban_reason, banned_at FROM \(schema).room_members
            WHERE room_id = $1 AND state = 'banned' ORDER BY banned_at DESC NULLS LAST, user_id
            """, [roomId]
        ).map { row in
            BanRecord(
                userId: row.string("user_id") ?? "", bannedBy: row.string("banned_by"), reason: row.string("ban_reason"),
                at: row.date("banned_at"))
        }
    }

    /// The users `userId` blocks, latest first.
    public func blocks(of userId: String) async throws -> [BlockRecord] {
        try await postgres.query(
            "SELECT blocked_id, blocked_at FROM \(schema).user_blocks WHERE user_id = $1 ORDER BY blocked_at DESC, blocked_id", [userId]
        ).map { BlockRecord(userId: $0.string("blocked_id") ?? "", at: $0.date("blocked_at") ?? Date(timeIntervalSince1970: 0)) }
    }

    static func user(_ row: PostgresRow) -> UserRecord {
        UserRecord(
            id: row.string("id") ?? "", username: row.string("username") ?? "", displayName: row.string("display_name") ?? "",
            createdAt: row.date("created_at") ?? Date(timeIntervalSince1970: 0))
    }

    static func room(_ row: PostgresRow) -> RoomRecord {
        RoomRecord(
            id: row.string("id") ?? "", kind: RoomKind(rawValue: row.string("kind") ?? "") ?? .group, name: row.string("name"),
            createdBy: row.string("created_by") ?? "", createdAt: row.date("created_at") ?? Date(timeIntervalSince1970: 0),
            lastSeq: row.int64("last_seq") ?? 0)
    }

    static func member(_ row: PostgresRow) -> MemberRecord {
        MemberRecord(
            userId: row.string("user_id") ?? "", role: Role(rawValue: row.string("role") ?? "") ?? .member,
            state: MemberState(rawValue: row.string("state") ?? "") ?? .left, lastReadSeq: row.int64("last_read_seq") ?? 0,
            muted: mutedNow(row.string("muted_until")), mutedUntil: row.string("muted_until") == "infinity" ? nil : row.date("muted_until"))
    }

    /// Whether a `muted_until` value (`infinity` until unmuted) is still ahead.
    static func mutedNow(_ text: String?) -> Bool {
        guard let text else { return false }
        if text == "infinity" { return true }
        return (parsePostgresTimestamp(text) ?? .distantPast) > Date()
    }
}
