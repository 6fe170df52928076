/// A member's role in a group room. Direct rooms have two `member`s.
public enum Role: String, Codable, Sendable, Comparable, CaseIterable {
    case owner, admin, member

    /// owner > admin > member.
    var rank: Int {
        switch self {
        case .owner: return 2
        case .admin: return 1
        case .member: return 0
        }
    }
    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}

/// Where a user stands in a room (CONTRACT `room_members.state`).
public enum MemberState: String, Codable, Sendable, CaseIterable {
    case invited, joined, left, removed, declined
}

/// `direct` rooms hold two users and are made by their first message; `group` rooms are
/// created explicitly and have an owner.
public enum RoomKind: String, Codable, Sendable {
    case direct, group
}

/// `user.registered` (v2). The password hash is a secret: audit and export leave it out.
public struct UserRegistered: Codable, Sendable, Equatable {
    public var userId: String
    public var username: String
    public var displayName: String
    public var passwordHash: String

    public init(userId: String, username: String, displayName: String, passwordHash: String) {
        self.userId = userId
        self.username = username
        self.displayName = displayName
        self.passwordHash = passwordHash
    }
}

/// `room.created`: a group room (with its creator as owner) or a direct room with its two members.
public struct RoomCreated: Codable, Sendable, Equatable {
    public var kind: RoomKind
    public var name: String?
    public var members: [String]?

    public init(kind: RoomKind, name: String? = nil, members: [String]? = nil) {
        self.kind = kind
        self.name = name
        self.members = members
    }
}

/// Every membership event: the member concerned and, where it changes, their role.
public struct MemberChange: Codable, Sendable, Equatable {
    public var userId: String
    public var role: Role?

    public init(userId: String, role: Role? = nil) {
        self.userId = userId
        self.role = role
    }
}

/// `room.renamed`.
public struct RoomRenamed: Codable, Sendable, Equatable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// `message.sent`. `clientMsgId` is always written (null when the client gave none).
public struct MessageSent: Codable, Sendable, Equatable {
    public var messageId: String
    public var body: String
    public var clientMsgId: String?
    public var replyTo: String?

    public init(messageId: String, body: String, clientMsgId: String? = nil, replyTo: String? = nil) {
        self.messageId = messageId
        self.body = body
        self.clientMsgId = clientMsgId
        self.replyTo = replyTo
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messageId, forKey: .messageId)
        try container.encode(body, forKey: .body)
        try container.encode(clientMsgId, forKey: .clientMsgId)
        try container.encodeIfPresent(replyTo, forKey: .replyTo)
    }
}

/// `message.edited`.
public struct MessageEdited: Codable, Sendable, Equatable {
    public var messageId: String
    public var body: String
    public init(messageId: String, body: String) {
        self.messageId = messageId
        self.body = body
    }
}

/// `message.deleted`.
public struct MessageDeleted: Codable, Sendable, Equatable {
    public var messageId: String
    public init(messageId: String) { self.messageId = messageId }
}

/// `room.read`: the reader has read everything up to `seq`.
public struct RoomRead: Codable, Sendable, Equatable {
    public var seq: Int64
    public init(seq: Int64) { self.seq = seq }
}

/// The typed `data` of an event.
public enum EventData: Sendable, Equatable {
    case userRegistered(UserRegistered)
    case roomCreated(RoomCreated)
    case memberInvited(MemberChange)
    case inviteDeclined(MemberChange)
    case memberJoined(MemberChange)
    case memberLeft(MemberChange)
    case memberRemoved(MemberChange)
    case memberRoleChanged(MemberChange)
    case roomRenamed(RoomRenamed)
    case messageSent(MessageSent)
    case messageEdited(MessageEdited)
    case messageDeleted(MessageDeleted)
    case roomRead(RoomRead)

    public var type: EventType {
        switch self {
        case .userRegistered: return .userRegistered
        case .roomCreated: return .roomCreated
        case .memberInvited: return .memberInvited
        case .inviteDeclined: return .inviteDeclined
        case .memberJoined: return .memberJoined
        case .memberLeft: return .memberLeft
        case .memberRemoved: return .memberRemoved
        case .memberRoleChanged: return .memberRoleChanged
        case .roomRenamed: return .roomRenamed
        case .messageSent: return .messageSent
        case .messageEdited: return .messageEdited
        case .messageDeleted: return .messageDeleted
        case .roomRead: return .roomRead
        }
    }

    /// The member a membership event concerns.
    public var member: MemberChange? {
        switch self {
        case .memberInvited(let m), .inviteDeclined(let m), .memberJoined(let m), .memberLeft(let m),
            .memberRemoved(let m), .memberRoleChanged(let m):
            return m
        default:
            return nil
        }
    }
}
