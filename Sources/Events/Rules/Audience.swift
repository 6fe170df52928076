/// Who receives an event: the one rule behind the WebSocket hub's live fan-out, its
/// replay after `since` and `parley-replay audit user`. Pure, like `decide` and `evolve`:
/// given who is a joined member of the event's room just before it, the event goes to
///
/// - the joined members of its room,
/// - the user a membership event concerns (an invitee, a removed or declining user), and
/// - the members a room starts with (its creator, both users of a direct room).
///
/// User events (`user.registered`) go to nobody, and a block (`user.blocked`, `user.unblocked`, logged in the two users'
/// direct room) only to the blocker: the blocked user learns of it when a private message or invite is refused.
/// A mute is not about membership: it reaches the room's joined members like a message.
public enum Audience {
    /// How an event changes whether a user is a joined member of its room.
    public enum Change: Sendable, Equatable {
        case joins
        case stopsBeingMember
    }

    /// The users whose joined membership of the event's room the event changes.
    public static func membershipChanges(_ event: Event) -> [(userId: String, change: Change)] {
        switch event.data {
        case .roomCreated(let created):
            return created.kind == .direct ? (created.members ?? []).map { ($0, .joins) } : [(event.actorId, .joins)]
        case .memberJoined(let m): return [(m.userId, .joins)]
        case .memberLeft(let m), .memberRemoved(let m), .inviteDeclined(let m), .memberBanned(let m): return [(m.userId, .stopsBeingMember)]
        default: return []
        }
    }

    /// The users an event is about as members, whether or not they were joined before it:
    /// the member a membership event concerns, the members a room starts with. The second
    /// half of the rule; the joined members are the first.
    public static func addressed(_ event: Event) -> [String] {
        switch event.data {
        case .roomCreated: return membershipChanges(event).map(\.userId)
        case .memberMuted, .memberUnmuted: return []
        // A ban tells the banned user only if they were in the room (a ban before they ever came tells them nothing of
        // it); an unban tells only the members (the user may never have been in the room).
        case .memberBanned(let m): return m.previousState == .joined || m.previousState == .invited ? [m.userId] : []
        case .memberUnbanned: return []
        default: return event.data.member.map { [$0.userId] } ?? []
        }
    }

    /// Whether the event is about `userId` as a member: it invites, admits, removes or
    /// promotes them, or starts a room with them in it.
    public static func concerns(_ userId: String, _ event: Event) -> Bool {
        addressed(event).contains(userId)
    }

    /// The users who receive `event`, given the joined members of its room before it.
    public static func recipients(of event: Event, joinedBefore members: Set<String>) -> Set<String> {
        guard event.roomId != nil else { return [] }
        if isBlock(event) { return [event.actorId] }
        return members.union(addressed(event))
    }

    /// Whether `userId` receives `event`, given whether they were a joined member of its
    /// room before it (`recipients` for one user).
    public static func reaches(_ userId: String, _ event: Event, joinedBefore: Bool) -> Bool {
        guard event.roomId != nil else { return false }
        if isBlock(event) { return userId == event.actorId }
        return joinedBefore || concerns(userId, event)
    }

    /// A block or unblock: only its actor receives it.
    static func isBlock(_ event: Event) -> Bool {
        switch event.data {
        case .userBlocked, .userUnblocked: return true
        default: return false
        }
    }

    /// Whether `userId` is a joined member of the event's room just after `event`; nil when
    /// the event does not concern the user's membership.
    public static func joinedAfter(_ userId: String, _ event: Event) -> Bool? {
        switch event.data {
        case .roomCreated: return concerns(userId, event) ? true : nil
        case .memberJoined(let m), .memberRoleChanged(let m): return m.userId == userId ? true : nil
        case .memberInvited(let m), .inviteDeclined(let m), .memberLeft(let m), .memberRemoved(let m), .memberBanned(let m),
            .memberUnbanned(let m):
            return m.userId == userId ? false : nil
        default: return nil
        }
    }

    /// Whether `userId` was a joined member of the event's room just before `event`, told
    /// by the event alone; nil when it does not concern the user, or does not tell (a
    /// removal logged before removals recorded `previousState`: the removed user may have
    /// been a joined member or an invitee).
    public static func joinedBefore(_ userId: String, _ event: Event) -> Bool? {
        switch event.data {
        case .memberRemoved(let m): return m.userId == userId ? m.previousState.map { $0 == .joined } : nil
        case .memberBanned(let m): return m.userId == userId ? m.previousState == .joined : nil
        case .memberUnbanned(let m): return m.userId == userId ? false : nil
        case .roomCreated: return concerns(userId, event) ? false : nil
        case .memberInvited(let m), .memberJoined(let m), .inviteDeclined(let m): return m.userId == userId ? false : nil
        case .memberLeft(let m), .memberRoleChanged(let m): return m.userId == userId ? true : nil
        default: return nil
        }
    }
}

/// One user's side of the rule: the rooms they are a joined member of, folded event by
/// event, and whether each event reaches them.
public struct Viewer: Sendable, Equatable {
    /// The user whose view this is; `rooms` changes as events are folded, this never does.
    public let userId: String
    /// The rooms the user is a joined member of (after the events folded so far).
    public var rooms: Set<String>

    /// `rooms` must be the user's joined rooms at the point the events to fold start (empty at the start of the log).
    public init(userId: String, rooms: Set<String>) {
        self.userId = userId
        self.rooms = rooms
    }

    /// Folds `event` in; returns whether it reaches the user.
    public mutating func receives(_ event: Event) -> Bool {
        guard let roomId = event.roomId else { return false }
        let reaches = Audience.reaches(userId, event, joinedBefore: rooms.contains(roomId))
        for (user, change) in Audience.membershipChanges(event) where user == userId {
            if change == .joins { rooms.insert(roomId) } else { rooms.remove(roomId) }
        }
        return reaches
    }

    /// The viewer as it was before `events` (oldest first), from the viewer after them:
    /// each room whose membership the events change for this user is set to what the
    /// first such event shows it was. A removal does not show it (the user may have been
    /// joined or only invited): `resolve` is asked for those rooms, and a room it cannot
    /// tell about (nil) is taken as not joined, the side that shows nothing the user may
    /// not read; `unresolved` lists them.
    public func rewound(
        over events: [Event], resolve: (_ roomId: String) -> Bool? = { _ in nil }
    ) -> (viewer: Viewer, unresolved: Set<String>) {
        var before = self
        var decided: Set<String> = []
        var unresolved: Set<String> = []
        for event in events {
            guard let roomId = event.roomId, !decided.contains(roomId), Audience.concerns(userId, event) else { continue }
            decided.insert(roomId)
            let joined: Bool
            if let known = Audience.joinedBefore(userId, event) {
                joined = known
            } else if let told = resolve(roomId) {
                joined = told
            } else {
                joined = false
                unresolved.insert(roomId)
            }
            if joined { before.rooms.insert(roomId) } else { before.rooms.remove(roomId) }
        }
        return (before, unresolved)
    }
}
