/// What the rules know about one room: its kind and name, the members that matter for a
/// command, the membership version, the last `seq`, and the messages a command touches.
/// Loaded from the guard state beside the log, or folded from events with `evolve`.
public struct RoomState: Sendable, Equatable {
    /// One member record. `since` is the membership version at which they joined (the
    /// order used to pick the next owner).
    public struct Member: Sendable, Equatable {
        public var role: Role
        public var state: MemberState
        public var since: Int64

        public init(role: Role, state: MemberState, since: Int64) {
            self.role = role
            self.state = state
            self.since = since
        }

        /// The guard-state encoding, `role:state:since`, compared byte for byte by the log.
        public var encoded: String { "\(role.rawValue):\(state.rawValue):\(since)" }

        public init?(encoded: String) {
            let parts = encoded.split(separator: ":")
            guard parts.count == 3, let role = Role(rawValue: String(parts[0])),
                let state = MemberState(rawValue: String(parts[1])), let since = Int64(parts[2])
            else { return nil }
            self.init(role: role, state: state, since: since)
        }
    }

    /// One message record: who sent it and whether it was deleted.
    public struct MessageRecord: Sendable, Equatable {
        public var senderId: String
        public var deleted: Bool

        public init(senderId: String, deleted: Bool) {
            self.senderId = senderId
            self.deleted = deleted
        }

        /// The guard-state encoding, `senderId|0` or `senderId|1`.
        public var encoded: String { "\(senderId)|\(deleted ? 1 : 0)" }

        public init?(encoded: String) {
            guard let bar = encoded.lastIndex(of: "|") else { return nil }
            self.init(senderId: String(encoded[..<bar]), deleted: encoded[encoded.index(after: bar)...] == "1")
        }
    }

    public var id: String
    public var kind: RoomKind
    public var name: String?
    /// The members loaded for the command (all of them after `evolve`).
    public var members: [String: Member]
    /// Bumped by every membership event.
    public var version: Int64
    public var lastSeq: Int64
    /// The messages loaded for the command (all of them after `evolve`).
    public var messages: [String: MessageRecord]

    public init(
        id: String, kind: RoomKind, name: String? = nil, members: [String: Member] = [:], version: Int64 = 0,
        lastSeq: Int64 = 0, messages: [String: MessageRecord] = [:]
    ) {
        self.id = id
        self.kind = kind
        self.name = name
        self.members = members
        self.version = version
        self.lastSeq = lastSeq
        self.messages = messages
    }

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
