/// Folds events into room state: the other half of the rules. The log's guard state, the
/// WebSocket hub's membership and the tests all use it.
extension Rules {
    /// The room after `event` (nil before its `room.created`). Events of other rooms and
    /// user events leave it unchanged.
    public static func evolve(_ room: RoomState?, _ event: Event) -> RoomState? {
        if case .roomCreated(let created) = event.data, let roomId = event.roomId {
            var state = RoomState(id: roomId, kind: created.kind, name: created.name, version: 1)
            switch created.kind {
            case .group:
                state.members[event.actorId] = .init(role: .owner, state: .joined, since: 1)
            case .direct:
                for member in created.members ?? [] { state.members[member] = .init(role: .member, state: .joined, since: 1) }
            }
            return state
        }
        guard var state = room, event.roomId == state.id else { return room }
        func setMember(_ userId: String, _ change: (inout RoomState.Member) -> Void, new: RoomState.Member) {
            state.version += 1
            var member = state.members[userId] ?? new
            change(&member)
            state.members[userId] = member
        }
        switch event.data {
        case .memberInvited(let m):
            setMember(
                m.userId,
                {
                    $0.role = m.role ?? .member
                    $0.state = .invited
                }, new: .init(role: .member, state: .invited, since: 0))
        case .inviteDeclined(let m):
            setMember(m.userId, { $0.state = .declined }, new: .init(role: .member, state: .declined, since: 0))
        case .memberJoined(let m):
            let since = state.version + 1
            setMember(
                m.userId,
                {
                    $0.role = m.role ?? $0.role
                    $0.state = .joined
                    $0.since = since
                }, new: .init(role: .member, state: .joined, since: since))
        case .memberLeft(let m):
            setMember(m.userId, { $0.state = .left }, new: .init(role: .member, state: .left, since: 0))
        case .memberRemoved(let m):
            setMember(m.userId, { $0.state = .removed }, new: .init(role: .member, state: .removed, since: 0))
        case .memberBanned(let m):
            setMember(
                m.userId,
                {
                    $0.state = .banned
                    $0.role = .member
                    $0.mutedUntil = nil
                }, new: .init(role: .member, state: .banned, since: 0))
        case .memberUnbanned(let m):
            setMember(m.userId, { $0.state = .left }, new: .init(role: .member, state: .left, since: 0))
        case .memberMuted(let m):
            let until = m.until.map(unixMilliseconds) ?? .max
            setMember(m.userId, { $0.mutedUntil = until }, new: .init(role: .member, state: .joined, since: 0, mutedUntil: until))
        case .memberUnmuted(let m):
            setMember(m.userId, { $0.mutedUntil = nil }, new: .init(role: .member, state: .joined, since: 0))
        case .memberRoleChanged(let m):
            setMember(m.userId, { $0.role = m.role ?? $0.role }, new: .init(role: m.role ?? .member, state: .joined, since: 0))
        case .roomRenamed(let renamed):
            state.name = renamed.name
        case .messageSent(let sent):
            state.lastSeq = event.seq ?? state.lastSeq + 1
            state.messages[sent.messageId] = .init(senderId: event.actorId, deleted: false, inThread: sent.threadRootId != nil)
        case .messageDeleted(let deleted):
            state.messages[deleted.messageId]?.deleted = true
        case .reactionAdded(let reaction):
            let key = RoomState.reactionKey(reaction.messageId, event.actorId)
            var emoji = state.reactions[key] ?? []
            if !emoji.contains(reaction.emoji) {
                emoji.append(reaction.emoji)
                state.reactions[key] = emoji.sorted()
            }
        case .reactionRemoved(let reaction):
            let key = RoomState.reactionKey(reaction.messageId, event.actorId)
            let emoji = (state.reactions[key] ?? []).filter { $0 != reaction.emoji }
            state.reactions[key] = emoji.isEmpty ? nil : emoji
        case .messagePinned(let pin):
            if state.pins.insert(pin.messageId).inserted { state.pinCount += 1 }
        case .messageUnpinned(let pin):
            if state.pins.remove(pin.messageId) != nil { state.pinCount = max(0, state.pinCount - 1) }
        case .messageEdited, .roomRead, .roomCreated, .userRegistered, .userBlocked, .userUnblocked:
            break
        }
        return state
    }
}
