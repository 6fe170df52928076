import Drivers
import Events
import Foundation

/// A user as others see them (never the password hash).
public struct UserRecord: Codable, Sendable, Equatable {
    public var id: String
    public var username: String
    public var displayName: String
    public var createdAt: Date
}

/// A room's own fields.
public struct RoomRecord: Codable, Sendable, Equatable {
    public var id: String
    public var kind: RoomKind
    public var name: String?
    public var createdBy: String
    public var createdAt: Date
    /// The seq of its last message (0: none yet).
    public var lastSeq: Int64
}

/// A member of a room as the read model holds them.
public struct MemberRecord: Codable, Sendable, Equatable {
    public var userId: String
    public var role: Role
    public var state: MemberState
    public var lastReadSeq: Int64
}

/// The last message of a room, for room lists.
public struct LastMessage: Codable, Sendable, Equatable {
    public var id: String
    public var seq: Int64
    public var senderId: String
    /// nil once the message was deleted.
    public var body: String?
    public var sentAt: Date
    public var deleted: Bool
}

/// One line of "my rooms".
public struct RoomSummary: Codable, Sendable, Equatable {
    public var room: RoomRecord
    public var lastMessage: LastMessage?
    public var unreadCount: Int64
    public var myRole: Role
}

/// A pending invite of a user.
public struct InviteRecord: Codable, Sendable, Equatable {
    public var roomId: String
    public var roomName: String?
    public var invitedBy: String?
    public var invitedAt: Date?
}

/// The queries over the metadata read model, beside the projector that owns its schema.
public struct MetadataReadModel: Sendable {
    let postgres: PostgresClient
    let schema: String

    public init(postgres: PostgresClient, schema: String = "public") {
        self.postgres = postgres
        self.schema = schema
    }

    public func user(id: String) async throws -> UserRecord? {
        try await postgres.query("SELECT * FROM \(schema).users WHERE id = $1", [id]).first.map(Self.user)
    }

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
            SELECT r.*, m.role AS my_role, m.last_read_seq FROM \(schema).room_members m
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
                myRole: Role(rawValue: row.string("my_role") ?? "") ?? .member)
        }
    }

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
            state: MemberState(rawValue: row.string("state") ?? "") ?? .left, lastReadSeq: row.int64("last_read_seq") ?? 0)
    }
}
