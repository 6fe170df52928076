import Foundation

/// What the rules know about one room: its kind and name, the members that matter for a
/// command, the membership version, the last `seq`, and the messages a command touches.
/// Loaded from the guard state beside the log, or folded from events with `evolve`.
public struct RoomState: Sendable, Equatable {
    /// One member record. `since` is the membership version at which they joined (the
    /// order used to pick the next owner).
    public struct Member: Sendable, Equatable {
        /// The role in the room; an invitee's is the role they will join with.
        public var role: Role
        /// Where the member stands; only a `.joined` member may send, mark read or use their role's rights.
        public var state: MemberState
        /// The room's membership `version` at their latest join (0 if they never joined): the lowest goes first in `successor`.
        public var since: Int64
        /// Until when (Unix milliseconds) the member is muted: `Int64.max` until unmuted, nil when not muted. A mute whose
        /// time has passed stays here until the next change; the rules compare it with the decision's `now`.
        public var mutedUntil: Int64?

        /// Checks nothing: records come from `evolve` or from the guard state.
        public init(role: Role, state: MemberState, since: Int64, mutedUntil: Int64? = nil) {
            self.role = role
            self.state = state
            self.since = since
            self.mutedUntil = mutedUntil
        }

        /// The guard-state encoding, `role:state:since`, and `:mutedUntil` while muted, compared byte for byte by the log.
        public var encoded: String {
            let base = "\(role.rawValue):\(state.rawValue):\(since)"
            return mutedUntil.map { base + ":\($0)" } ?? base
        }

        /// Whether the member is muted at `now`.
        public func isMuted(at now: Date) -> Bool {
            guard let mutedUntil else { return false }
            return mutedUntil == .max || unixMilliseconds(now) < mutedUntil
        }

        /// Parses `role:state:since[:mutedUntil]` as the guard state stores it; nil for anything else.
        public init?(encoded: String) {
            let parts = encoded.split(separator: ":")
            guard parts.count == 3 || parts.count == 4, let role = Role(rawValue: String(parts[0])),
                let state = MemberState(rawValue: String(parts[1])), let since = Int64(parts[2])
            else { return nil }
            var muted: Int64?
            if parts.count == 4 {
                guard let until = Int64(parts[3]) else { return nil }
                muted = until
            }
            self.init(role: role, state: state, since: since, mutedUntil: muted)
        }
    }

    /// One message record: who sent it and whether it was deleted.
    public struct MessageRecord: Sendable, Equatable {
        /// Who sent the message: the only user who may edit it, and one of those who may delete it.
        public var senderId: String
        /// Whether it was deleted: it cannot be edited any more, and deleting it again appends nothing.
        public var deleted: Bool
        /// Whether it is a reply in a thread: it cannot be a thread's root.
        public var inThread: Bool

        /// Checks nothing: records come from `evolve` or from the guard state.
        public init(senderId: String, deleted: Bool, inThread: Bool = false) {
            self.senderId = senderId
            self.deleted = deleted
            self.inThread = inThread
        }

        /// The guard-state encoding, `senderId|0` or `senderId|1`, with `|t` after it for a reply in a thread.
        public var encoded: String { "\(senderId)|\(deleted ? 1 : 0)" + (inThread ? "|t" : "") }

        /// Parses `senderId|0` or `senderId|1`, maybe followed by `|t` (split at the last `|` before it); nil when there is
        /// no `|`.
        public init?(encoded: String) {
            var text = Substring(encoded)
            let inThread = text.hasSuffix("|t")
            if inThread { text = text.dropLast(2) }
            guard let bar = text.lastIndex(of: "|") else { return nil }
            self.init(senderId: String(text[..<bar]), deleted: text[text.index(after: bar)...] == "1", inThread: inThread)
        }
    }

    /// The room's id: `r-…` for a group, `Partitioning.directRoomId` (`d-…`) for a direct room.
    public var id: String
    /// Group or direct: a direct room has no invites, roles, names or leaving.
    public var kind: RoomKind
    /// The group's current name; nil for a direct room.
    public var name: String?
    /// The members loaded for the command (all of them after `evolve`).
    public var members: [String: Member]
    /// Bumped by every membership event.
    public var version: Int64
    /// The seq of the room's last message (0 before any): the next send gets lastSeq + 1.
    public var lastSeq: Int64
    /// The messages loaded for the command (all of them after `evolve`).
    public var messages: [String: MessageRecord]
    /// Reactions by `Self.reactionKey(messageId, userId)`: that user's emoji on that message, sorted (loaded for the
    /// command; all of them after `evolve`). A user with none has no entry.
    public var reactions: [String: [String]]
    /// The pinned messages loaded for the command (all of them after `evolve`).
    public var pins: Set<String>
    /// How many messages of the room are pinned now (all of them, loaded or not).
    public var pinCount: Int

    /// Loaded state may hold only some `members` and `messages`: those the command needs.
    public init(
        id: String, kind: RoomKind, name: String? = nil, members: [String: Member] = [:], version: Int64 = 0,
        lastSeq: Int64 = 0, messages: [String: MessageRecord] = [:], reactions: [String: [String]] = [:], pins: Set<String> = [],
        pinCount: Int = 0
    ) {
        self.id = id
        self.kind = kind
        self.name = name
        self.members = members
        self.version = version
        self.lastSeq = lastSeq
        self.messages = messages
        self.reactions = reactions
        self.pins = pins
        self.pinCount = pinCount
    }

    /// The key of one user's reactions to one message in `reactions` (and the guard state's field).
    public static func reactionKey(_ messageId: String, _ userId: String) -> String { messageId + " " + userId }

    /// The guard-state encoding of a user's reactions: the emoji, sorted, separated by spaces (an emoji has none).
    public static func encodeReactions(_ emoji: [String]) -> String { emoji.joined(separator: " ") }

    /// Parses `encodeReactions`' text.
    public static func decodeReactions(_ text: String) -> [String] { text.split(separator: " ").map(String.init) }

    /// The member record of `userId` if they are joined now.
    public func joined(_ userId: String) -> Member? {
        guard let member = members[userId], member.state == .joined else { return nil }
        return member
    }

    /// Who becomes owner when the owner leaves: the longest-standing admin, else the
    /// longest-standing member; nil when nobody else is joined.
    public func successor(excluding owner: String) -> String? {
        members.filter { $0.key != owner && $0.value.state == .joined }
            .min { a, b in
                if a.value.role != b.value.role { return a.value.role > b.value.role }
                if a.value.since != b.value.since { return a.value.since < b.value.since }
                return a.key < b.key
            }?.key
    }
}
