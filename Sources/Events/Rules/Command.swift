import Foundation

/// What a user asks for. Every command is decided against the state it concerns and, if
/// allowed, becomes events.
public enum Command: Sendable, Equatable {
    case register(userId: String, username: String, displayName: String?, passwordHash: String)
    case createGroup(roomId: String, name: String, invite: [String])
    /// A private message; the direct room is created by the first one.
    case sendDirect(to: String, messageId: String, body: String, clientMsgId: String?)
    case send(roomId: String, messageId: String, body: String, clientMsgId: String?, replyTo: String?)
    case edit(roomId: String, messageId: String, body: String)
    case delete(roomId: String, messageId: String)
    case invite(roomId: String, userId: String)
    case join(roomId: String)
    case decline(roomId: String)
    case leave(roomId: String)
    case remove(roomId: String, userId: String)
    case setRole(roomId: String, userId: String, role: Role)
    case rename(roomId: String, name: String)
    case markRead(roomId: String, seq: Int64)

    /// The room a command acts on (the direct room for `sendDirect`), nil for `register`.
    public func roomId(actor: String) -> String? {
        switch self {
        case .register: return nil
        case .sendDirect(let to, _, _, _): return Partitioning.directRoomId(actor, to)
        case .createGroup(let id, _, _), .send(let id, _, _, _, _), .edit(let id, _, _), .delete(let id, _),
            .invite(let id, _), .join(let id), .decline(let id), .leave(let id), .remove(let id, _),
            .setRole(let id, _, _), .rename(let id, _), .markRead(let id, _):
            return id
        }
    }
}

/// A refusal, with the contract's error code (CONTRACT section 3).
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidRequest = "invalid_request"
        case notFound = "not_found"
        case notAMember = "not_a_member"
        case forbidden
        case conflict
        case tooLarge = "too_large"
        case usernameTaken = "username_taken"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// A fact the decision relied on: a guard-state value as the rules saw it (nil: absent).
/// The log appends the decision's events only if every fact still holds, atomically.
public struct Fact: Sendable, Equatable, Hashable {
    public enum Subject: Sendable, Equatable, Hashable {
        /// A room's kind (its existence) or its membership version (`ver`).
        case room(roomId: String, field: String)
        case member(roomId: String, userId: String)
        case message(roomId: String, messageId: String)
        case username(String)
    }

    public var subject: Subject
    public var expected: String?

    public init(_ subject: Subject, _ expected: String?) {
        self.subject = subject
        self.expected = expected
    }
}

/// What `decide` returns: the events to append (the log adds `seq` and the hashes), the
/// facts they depend on, and for sends the client's idempotency key.
public struct Decision: Sendable, Equatable {
    public var events: [Event]
    public var facts: [Fact]
    /// `(roomId, userId, clientMsgId)`: a second send with it returns the first message.
    public var clientMessageKey: ClientMessageKey?

    public init(events: [Event], facts: [Fact] = [], clientMessageKey: ClientMessageKey? = nil) {
        self.events = events
        self.facts = facts
        self.clientMessageKey = clientMessageKey
    }
}

public struct ClientMessageKey: Sendable, Equatable, Hashable {
    public var roomId: String
    public var userId: String
    public var clientMsgId: String

    public init(roomId: String, userId: String, clientMsgId: String) {
        self.roomId = roomId
        self.userId = userId
        self.clientMsgId = clientMsgId
    }
}

/// Everything `decide` may know besides the room: no clocks, no I/O.
public struct DecisionContext: Sendable {
    public var actorId: String
    public var now: Date
    /// Makes event ids (random in production, counted in tests).
    public var newID: @Sendable () -> String
    public var maxMessageBytes: Int
    public var maxNameLength = 100
    public var maxInvitesPerCommand = 100
    public var maxClientMsgIdLength = 128

    public init(actorId: String, now: Date, maxMessageBytes: Int = 4000, newID: @escaping @Sendable () -> String) {
        self.actorId = actorId
        self.now = now
        self.maxMessageBytes = maxMessageBytes
        self.newID = newID
    }
}

/// The state a command is decided against.
public struct DecisionState: Sendable, Equatable {
    /// The room (nil: it does not exist).
    public var room: RoomState?
    /// Users known to exist, among those the command names (recipients, invitees).
    public var knownUsers: Set<String>
    /// For `register`: whether the username is taken.
    public var usernameTaken: Bool

    public init(room: RoomState? = nil, knownUsers: Set<String> = [], usernameTaken: Bool = false) {
        self.room = room
        self.knownUsers = knownUsers
        self.usernameTaken = usernameTaken
    }
}
