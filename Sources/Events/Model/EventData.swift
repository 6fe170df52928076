import Foundation

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
    /// Orders by authority, member < admin < owner, so that a rule can say `role >= .admin`.
    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}

/// Where a user stands in a room (CONTRACT `room_members.state`).
public enum MemberState: String, Codable, Sendable, CaseIterable {
    /// `banned`: removed and kept out (no invite, no join) until unbanned, which leaves them `left`.
    case invited, joined, left, removed, declined, banned
}

/// `direct` rooms hold two users and are made by their first message; `group` rooms are
/// created explicitly and have an owner.
public enum RoomKind: String, Codable, Sendable {
    case direct, group
}

/// `user.registered` (v2). The password hash is a secret: audit and export leave it out.
public struct UserRegistered: Codable, Sendable, Equatable {
    /// The new user's id (`newID()`), also the event's `actorId`.
    public var userId: String
    /// Lowercased, 3 to 32 characters of a-z, 0-9, `_ . -`; unique among all users (checked in the user partition).
    public var username: String
    /// The name shown to others, trimmed, 1 to 64 characters; v1 events had none and are upcast with the username.
    public var displayName: String
    /// The bcrypt hash that logins check; a secret, which `export` and `audit` leave out.
    public var passwordHash: String

    /// Checks nothing: `Rules.decide` normalises and validates the values before making one.
    public init(userId: String, username: String, displayName: String, passwordHash: String) {
        self.userId = userId
        self.username = username
        self.displayName = displayName
        self.passwordHash = passwordHash
    }
}

/// `room.created`: a group room (with its creator as owner) or a direct room with its two members.
public struct RoomCreated: Codable, Sendable, Equatable {
    /// Group or direct: it decides who starts in the room and which commands the room allows.
    public var kind: RoomKind
    /// The group's name (trimmed, 1 to `maxNameLength` characters); nil for a direct room.
    public var name: String?
    /// The two users of a direct room, sorted, both joined from the start; nil for a group, whose owner is the actor.
    public var members: [String]?

    /// A group passes `name`, a direct room `members`; `Rules.decide` makes both.
    public init(kind: RoomKind, name: String? = nil, members: [String]? = nil) {
        self.kind = kind
        self.name = name
        self.members = members
    }
}

/// Every membership event: the member concerned and, where it changes, their role.
public struct MemberChange: Codable, Sendable, Equatable {
    /// The member concerned (invitee, joiner, leaver, removed or promoted user), who need not be the event's actor.
    public var userId: String
    /// The role the event gives (invites, joins, role changes); nil where it changes none (declines, leaves, removals).
    public var role: Role?
    /// On `member.removed`: whether the removed user had joined or was only invited. Who may
    /// read the room up to the removal depends on it (the WebSocket replay after `since`
    /// reads it); nil on other events and on removals logged before it was recorded.
    public var previousState: MemberState?
    /// On `member.banned`: why, in the banner's words (trimmed, at most 500 characters); nil when none was given.
    public var reason: String?
    /// On `member.muted`: when the mute ends; nil for a mute until unmuted.
    public var until: Date?

    /// `role`, `previousState`, `reason` and `until` stay nil for the events that do not carry them.
    public init(userId: String, role: Role? = nil, previousState: MemberState? = nil, reason: String? = nil, until: Date? = nil) {
        self.userId = userId
        self.role = role
        self.previousState = previousState
        self.reason = reason
        self.until = until
    }
}

/// `room.renamed`.
public struct RoomRenamed: Codable, Sendable, Equatable {
    /// The new name, trimmed, 1 to `maxNameLength` characters.
    public var name: String
    /// Checks nothing: `Rules.decide` trims and validates the name first.
    public init(name: String) { self.name = name }
}

/// `message.sent`. `clientMsgId` is always written (null when the client gave none).
public struct MessageSent: Codable, Sendable, Equatable {
    /// The message's id, made by the server (not the client); edits, deletions and `replyTo` refer to it.
    public var messageId: String
    /// The text as sent: not blank, at most `maxMessageBytes` UTF-8 bytes (4,000 by default).
    public var body: String
    /// The client's idempotency key (one message per room, sender and key); nil when the client gave none.
    public var clientMsgId: String?
    /// The `messageId` of the message of the same room this one answers; nil for none (and then left out of the JSON).
    public var replyTo: String?
    /// The thread this message is a reply in: the `messageId` of its root, a message of the room not itself in a thread;
    /// nil for a message of the room's main timeline (and then left out of the JSON).
    public var threadRootId: String?
    /// The users the message mentions (joined members of the room, at most 50, each once); nil for none (left out).
    public var mentions: [String]?

    /// Checks nothing: `Rules.decide` validates the body, the client id, the reply target, the thread and the mentions.
    public init(
        messageId: String, body: String, clientMsgId: String? = nil, replyTo: String? = nil, threadRootId: String? = nil,
        mentions: [String]? = nil
    ) {
        self.messageId = messageId
        self.body = body
        self.clientMsgId = clientMsgId
        self.replyTo = replyTo
        self.threadRootId = threadRootId
        self.mentions = mentions
    }

    /// Writes `clientMsgId` even when nil (as null, as the contract wants) and `replyTo` only when set.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messageId, forKey: .messageId)
        try container.encode(body, forKey: .body)
        try container.encode(clientMsgId, forKey: .clientMsgId)
        try container.encodeIfPresent(replyTo, forKey: .replyTo)
        try container.encodeIfPresent(threadRootId, forKey: .threadRootId)
        try container.encodeIfPresent(mentions, forKey: .mentions)
    }
}

/// `message.edited`.
public struct MessageEdited: Codable, Sendable, Equatable {
    /// The message edited: only its sender may edit it, and not once it is deleted.
    public var messageId: String
    /// The text replacing the previous one (the messages read model keeps the history); limited like a sent body.
    public var body: String
    /// Checks nothing: `Rules.decide` validates the body and the editor first.
    public init(messageId: String, body: String) {
        self.messageId = messageId
        self.body = body
    }
}

/// `message.deleted`.
public struct MessageDeleted: Codable, Sendable, Equatable {
    /// The message deleted, by its sender or an admin or owner; its `body` reads as null from then on.
    public var messageId: String
    /// Checks nothing: `Rules.decide` checks who may delete first.
    public init(messageId: String) { self.messageId = messageId }
}

/// `room.read`: the reader has read everything up to `seq`.
public struct RoomRead: Codable, Sendable, Equatable {
    /// The last message read (0 up to the room's `lastSeq`): the unread count is the messages after it.
    public var seq: Int64
    /// Checks nothing: `Rules.decide` refuses a negative seq or one beyond the room's last message.
    public init(seq: Int64) { self.seq = seq }
}

/// `reaction.added` and `reaction.removed`: the actor's reaction with `emoji` to a message of the room.
public struct Reaction: Codable, Sendable, Equatable {
    /// The message reacted to: a message of the room, not deleted.
    public var messageId: String
    /// The reaction: 1 to 32 UTF-8 bytes without white space or U+0000 (an emoji, or a short code like `:shipit:`).
    public var emoji: String
    /// Checks nothing: `Rules.decide` validates the emoji and the message first.
    public init(messageId: String, emoji: String) {
        self.messageId = messageId
        self.emoji = emoji
    }
}

/// `message.pinned` and `message.unpinned`: a message of the room pinned to (or taken off) the room's pins.
public struct MessagePin: Codable, Sendable, Equatable {
    /// The message pinned or unpinned. A deleted message is unpinned by its deletion (the same decision).
    public var messageId: String
    /// Checks nothing: `Rules.decide` checks the pinner's role and the room's limit first.
    public init(messageId: String) { self.messageId = messageId }
}

/// `user.blocked` and `user.unblocked`: the actor stops (or starts again) taking private messages and invites from
/// `userId`. Logged in the partition of their direct room (which need not exist yet), so that a private message is
/// checked against it atomically; only the blocker is sent it.
public struct UserBlock: Codable, Sendable, Equatable {
    /// The user blocked or unblocked.
    public var userId: String
    /// Checks nothing: `Rules.decide` checks the user exists first.
    public init(userId: String) { self.userId = userId }
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
    case reactionAdded(Reaction)
    case reactionRemoved(Reaction)
    case messagePinned(MessagePin)
    case messageUnpinned(MessagePin)
    case memberBanned(MemberChange)
    case memberUnbanned(MemberChange)
    case memberMuted(MemberChange)
    case memberUnmuted(MemberChange)
    case userBlocked(UserBlock)
    case userUnblocked(UserBlock)

    /// The wire type of this case; `Event.type` reads it.
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
        case .reactionAdded: return .reactionAdded
        case .reactionRemoved: return .reactionRemoved
        case .messagePinned: return .messagePinned
        case .messageUnpinned: return .messageUnpinned
        case .memberBanned: return .memberBanned
        case .memberUnbanned: return .memberUnbanned
        case .memberMuted: return .memberMuted
        case .memberUnmuted: return .memberUnmuted
        case .userBlocked: return .userBlocked
        case .userUnblocked: return .userUnblocked
        }
    }

    /// The member a membership event concerns.
    public var member: MemberChange? {
        switch self {
        case .memberInvited(let m), .inviteDeclined(let m), .memberJoined(let m), .memberLeft(let m),
            .memberRemoved(let m), .memberRoleChanged(let m), .memberBanned(let m), .memberUnbanned(let m), .memberMuted(let m),
            .memberUnmuted(let m):
            return m
        default:
            return nil
        }
    }
}
