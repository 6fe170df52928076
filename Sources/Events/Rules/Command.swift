import Foundation

/// What a user asks for. Every command is decided against the state it concerns and, if
/// allowed, becomes events.
public enum Command: Sendable, Equatable {
    case register(userId: String, username: String, displayName: String?, passwordHash: String)
    case createGroup(roomId: String, name: String, invite: [String])
    /// A private message; the direct room is created by the first one.
    case sendDirect(to: String, messageId: String, body: String, clientMsgId: String?)
    /// A message to a room; `threadRootId` makes it a reply in that message's thread, `mentions` names members.
    case send(
        roomId: String, messageId: String, body: String, clientMsgId: String?, replyTo: String?, threadRootId: String? = nil,
        mentions: [String] = [])
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
    /// Adds the actor's reaction `emoji` to a message (nothing when it is there already).
    case react(roomId: String, messageId: String, emoji: String)
    /// Takes the actor's reaction `emoji` off a message (nothing when it is not there).
    case unreact(roomId: String, messageId: String, emoji: String)
    /// Pins a message to its room (owner or admin of a group, either member of a direct room).
    case pin(roomId: String, messageId: String)
    /// Takes a message off the room's pins.
    case unpin(roomId: String, messageId: String)
    /// Bans a user from a group: removed if a member or invitee, and kept out until unbanned.
    case ban(roomId: String, userId: String, reason: String?)
    case unban(roomId: String, userId: String)
    /// Mutes a member of a group (until `until`, or until unmuted): they read but do not send, edit, react or pin.
    case mute(roomId: String, userId: String, until: Date?)
    case unmute(roomId: String, userId: String)
    /// The actor blocks a user: no private message from them (new or in an existing direct room), no invite from them.
    case block(userId: String)
    case unblock(userId: String)

    /// The room a command acts on (the direct room for `sendDirect`), nil for `register`.
    public func roomId(actor: String) -> String? {
        switch self {
        case .register: return nil
        case .sendDirect(let to, _, _, _): return Partitioning.directRoomId(actor, to)
        case .createGroup(let id, _, _), .send(let id, _, _, _, _, _, _), .edit(let id, _, _), .delete(let id, _),
            .invite(let id, _), .join(let id), .decline(let id), .leave(let id), .remove(let id, _),
            .setRole(let id, _, _), .rename(let id, _), .markRead(let id, _), .react(let id, _, _), .unreact(let id, _, _),
            .pin(let id, _), .unpin(let id, _), .ban(let id, _, _), .unban(let id, _), .mute(let id, _, _), .unmute(let id, _):
            return id
        case .block(let userId), .unblock(let userId): return Partitioning.directRoomId(actor, userId)
        }
    }
}

/// A refusal, with the contract's error code (CONTRACT section 3).
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The contract's refusal codes (CONTRACT section 3); the server maps each to its HTTP status (400, 403, 404, 409, 413).
    public enum Code: String, Sendable {
        case invalidRequest = "invalid_request"
        case notFound = "not_found"
        case notAMember = "not_a_member"
        case forbidden
        case conflict
        case tooLarge = "too_large"
        case usernameTaken = "username_taken"
    }

    /// The contract's code, sent to the client as `error.code`; the HTTP status follows from it.
    public let code: Code
    /// Why, in words for people (sent as `error.message`); not stable, so never match on it.
    public let message: String

    /// `message` should say what was refused and why, in words a user can act on.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`, for logs and test failures.
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A fact the decision relied on: a guard-state value as the rules saw it (nil: absent).
/// The log appends the decision's events only if every fact still holds, atomically.
public struct Fact: Sendable, Equatable, Hashable {
    /// Which guard value a fact is about; `GuardKeys` in EventLog maps each case to a Redis hash and field.
    public enum Subject: Sendable, Equatable, Hashable {
        /// A room's kind (its existence) or its membership version (`ver`).
        case room(roomId: String, field: String)
        case member(roomId: String, userId: String)
        case message(roomId: String, messageId: String)
        /// One user's reactions to one message (the emoji, sorted, space-separated).
        case reactions(roomId: String, messageId: String, userId: String)
        /// Whether a message is pinned ("1", or absent).
        case pin(roomId: String, messageId: String)
        /// Whether `userId` blocks the other user of the direct room `roomId` ("1", or absent).
        case block(roomId: String, userId: String)
        case username(String)
    }

    /// The guard value the decision read.
    public var subject: Subject
    /// Its value as the rules saw it (an encoded member or message record, a kind, a version); nil: it was absent.
    public var expected: String?

    /// A fact that `subject` still holds `expected` (or, for nil, is still absent) when the events are appended.
    public init(_ subject: Subject, _ expected: String?) {
        self.subject = subject
        self.expected = expected
    }
}

/// What `decide` returns: the events to append (the log adds `seq` and the hashes), the
/// facts they depend on, and for sends the client's idempotency key.
public struct Decision: Sendable, Equatable {
    /// The events to append, in order, without `seq` or hashes; empty when the command changes nothing.
    public var events: [Event]
    /// The guard values the decision relied on: if one has changed at append time, the log decides again on fresh state.
    public var facts: [Fact]
    /// `(roomId, userId, clientMsgId)`: a second send with it returns the first message.
    public var clientMessageKey: ClientMessageKey?

    /// `facts` and `clientMessageKey` default to none: a decision that relies on no guard value and is not a send.
    public init(events: [Event], facts: [Fact] = [], clientMessageKey: ClientMessageKey? = nil) {
        self.events = events
        self.facts = facts
        self.clientMessageKey = clientMessageKey
    }
}

/// The idempotency key of a send: at most one message per room, sender and `clientMsgId`.
public struct ClientMessageKey: Sendable, Equatable, Hashable {
    /// The room sent to (for a private message, the direct room).
    public var roomId: String
    /// The sender: two users may use the same `clientMsgId` in a room without clashing.
    public var userId: String
    /// The client's id of the send, 1 to `maxClientMsgIdLength` characters.
    public var clientMsgId: String

    /// Checks nothing: `Rules.decide` validates `clientMsgId` before making the key.
    public init(roomId: String, userId: String, clientMsgId: String) {
        self.roomId = roomId
        self.userId = userId
        self.clientMsgId = clientMsgId
    }
}

/// Everything `decide` may know besides the room: no clocks, no I/O.
public struct DecisionContext: Sendable {
    /// The user the command is for: every event's `actorId`, except `register`'s, whose actor is the new user.
    public var actorId: String
    /// The time every event of the decision carries as `at`; the log passes it rounded to the millisecond.
    public var now: Date
    /// Makes event ids (random in production, counted in tests).
    public var newID: @Sendable () -> String
    /// The most UTF-8 bytes a message body may have (`PARLEY_MAX_MESSAGE_BYTES`, 4,000 by default); more is `too_large`.
    public var maxMessageBytes: Int
    /// The most characters a room name may have once trimmed; more is `invalid_request`.
    public var maxNameLength = 100
    /// The most users `createGroup` may invite at once (repeats and the creator left out); more is `invalid_request`.
    public var maxInvitesPerCommand = 100
    /// The most Unicode scalars a `clientMsgId` may have, as JSON Schema's maxLength counts them (the OpenAPI document's 128).
    public var maxClientMsgIdLength = 128
    /// The most distinct reactions one user may have on one message; one more is `conflict`.
    public var maxReactionsPerUser = 20
    /// The most UTF-8 bytes an emoji (a reaction) may have.
    public var maxEmojiBytes = 32
    /// The most messages a room may have pinned at once; one more is `conflict`.
    public var maxPinsPerRoom = 50
    /// The most users a message may mention.
    public var maxMentions = 50
    /// The most characters a ban's reason may have once trimmed.
    public var maxReasonLength = 500

    /// `newID` makes the event ids (`Events.newID` in production, counted in tests); limits not passed keep their defaults.
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
    /// Messages of `room` whose records were read from the archive (no longer in the guard state), each with the room's
    /// eviction count when they were read: the append checks that none of them was evicted again since. The rules ignore it.
    public var coldMessages: [String: String]
    /// For commands between two users (a private message, a block, an invite): which of the two block the other, read
    /// from the guard state of their direct room (which need not exist).
    public var blockers: Set<String>

    /// The defaults know nothing: no room, no known users, the username free, nobody blocking.
    public init(
        room: RoomState? = nil, knownUsers: Set<String> = [], usernameTaken: Bool = false, coldMessages: [String: String] = [:],
        blockers: Set<String> = []
    ) {
        self.room = room
        self.knownUsers = knownUsers
        self.usernameTaken = usernameTaken
        self.coldMessages = coldMessages
        self.blockers = blockers
    }
}
