import Foundation

/// The chat rules as pure code: `decide(command, state, context)` returns the events a
/// command produces, or throws the refusal. It reads nothing but its arguments.
public enum Rules {
    /// Decides `command` against `state`: the events to append and the facts they rely on, or the `RuleError` refusal.
    /// No events means nothing to do (deleting a deleted message, giving a role someone has).
    public static func decide(_ command: Command, _ state: DecisionState, _ context: DecisionContext) throws(RuleError)
        -> Decision
    {
        let actor = context.actorId
        func event(_ data: EventData, room: String?) -> Event {
            Event(id: context.newID(), at: context.now, actorId: actor, roomId: room, data: data)
        }
        switch command {
        case .register(let userId, let username, let displayName, let passwordHash):
            let name = username.lowercased()
            try validateUsername(name)
            let display = (displayName ?? username).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !display.isEmpty, display.count <= 64 else {
                throw RuleError(.invalidRequest, "displayName must be 1 to 64 characters")
            }
            try refuseNUL(display, "displayName")
            guard !state.usernameTaken else { throw RuleError(.usernameTaken, "the username \(name) is taken") }
            let registered = UserRegistered(userId: userId, username: name, displayName: display, passwordHash: passwordHash)
            return Decision(
                events: [Event(id: context.newID(), at: context.now, actorId: userId, data: .userRegistered(registered))],
                facts: [Fact(.username(name), nil)])

        case .createGroup(let roomId, let name, let invite):
            let name = try validateName(name, context)
            let invitees = Array(NSOrderedSet(array: invite.filter { $0 != actor })) as? [String] ?? []
            guard invitees.count <= context.maxInvitesPerCommand else {
                throw RuleError(.invalidRequest, "at most \(context.maxInvitesPerCommand) invites at once")
            }
            if let unknown = invitees.first(where: { !state.knownUsers.contains($0) }) {
                throw RuleError(.notFound, "no user \(unknown)")
            }
            // Read from each pair's direct room, another partition: checked when deciding, not again at the append.
            if let blocker = invitees.first(where: { state.blockers.contains($0) }) {
                throw RuleError(.forbidden, "\(blocker) does not take invites from you")
            }
            guard state.room == nil else { throw RuleError(.conflict, "room \(roomId) exists") }
            var events = [event(.roomCreated(RoomCreated(kind: .group, name: name)), room: roomId)]
            events += invitees.map { event(.memberInvited(MemberChange(userId: $0, role: .member)), room: roomId) }
            return Decision(events: events, facts: [Fact(.room(roomId: roomId, field: "kind"), nil)])

        case .sendDirect(let to, let messageId, let body, let clientMsgId):
            guard to != actor else { throw RuleError(.conflict, "a private message needs another user") }
            guard state.knownUsers.contains(to) else { throw RuleError(.notFound, "no user \(to)") }
            try validateBody(body, context)
            let clientMsgId = try validateClientMsgId(clientMsgId, context)
            let roomId = Partitioning.directRoomId(actor, to)
            try notBlocked(by: to, state)
            let notBlocked = Fact(.block(roomId: roomId, userId: to), nil)
            let sent = event(.messageSent(MessageSent(messageId: messageId, body: body, clientMsgId: clientMsgId)), room: roomId)
            let key = clientMsgId.map { ClientMessageKey(roomId: roomId, userId: actor, clientMsgId: $0) }
            guard let room = state.room else {
                let members = [actor, to].sorted()
                let created = event(.roomCreated(RoomCreated(kind: .direct, members: members)), room: roomId)
                return Decision(
                    events: [created, sent], facts: [Fact(.room(roomId: roomId, field: "kind"), nil), notBlocked], clientMessageKey: key)
            }
            let me = try joinedMember(actor, of: room)
            return Decision(events: [sent], facts: [memberFact(room, actor, me), notBlocked], clientMessageKey: key)

        case .send(let roomId, let messageId, let body, let clientMsgId, let replyTo, let threadRootId, let mentions):
            let room = try existing(state.room, roomId)
            let me = try joinedMember(actor, of: room)
            try notMuted(me, context)
            var blockFacts: [Fact] = []
            if room.kind == .direct {
                // A direct room's other member may have blocked the sender since it began.
                guard let other = room.members.keys.first(where: { $0 != actor }) else { throw RuleError(.notFound, "no room \(roomId)") }
                try notBlocked(by: other, state)
                blockFacts.append(Fact(.block(roomId: roomId, userId: other), nil))
            }
            try validateBody(body, context)
            let clientMsgId = try validateClientMsgId(clientMsgId, context)
            var facts = [memberFact(room, actor, me)] + blockFacts
            if let replyTo {
                guard let original = room.messages[replyTo] else {
                    throw RuleError(.notFound, "replyTo \(replyTo) is not a message of this room")
                }
                facts.append(Fact(.message(roomId: roomId, messageId: replyTo), original.encoded))
            }
            if let threadRootId {
                guard let root = room.messages[threadRootId] else {
                    throw RuleError(.notFound, "threadRootId \(threadRootId) is not a message of this room")
                }
                guard !root.inThread else {
                    throw RuleError(.conflict, "message \(threadRootId) is a reply in a thread: answer in its thread's root")
                }
                guard !root.deleted else { throw RuleError(.conflict, "message \(threadRootId) was deleted") }
                if threadRootId != replyTo { facts.append(Fact(.message(roomId: roomId, messageId: threadRootId), root.encoded)) }
            }
            var mentioned: [String] = []
            for userId in mentions where !mentioned.contains(userId) { mentioned.append(userId) }
            guard mentioned.count <= context.maxMentions else {
                throw RuleError(.invalidRequest, "a message mentions at most \(context.maxMentions) people")
            }
            for userId in mentioned where userId != actor {
                guard let member = room.joined(userId) else {
                    throw RuleError(.notFound, "\(userId) is not a member of this room and cannot be mentioned")
                }
                facts.append(memberFact(room, userId, member))
            }
            let sent = MessageSent(
                messageId: messageId, body: body, clientMsgId: clientMsgId, replyTo: replyTo, threadRootId: threadRootId,
                mentions: mentioned.isEmpty ? nil : mentioned)
            return Decision(
                events: [event(.messageSent(sent), room: roomId)], facts: facts,
                clientMessageKey: clientMsgId.map { ClientMessageKey(roomId: roomId, userId: actor, clientMsgId: $0) })

        case .edit(let roomId, let messageId, let body):
            let room = try existing(state.room, roomId)
            let me = try joinedMember(actor, of: room)
            guard let message = room.messages[messageId] else { throw RuleError(.notFound, "no message \(messageId) in this room") }
            guard message.senderId == actor else { throw RuleError(.forbidden, "only the sender edits a message") }
            try notMuted(me, context)
            guard !message.deleted else { throw RuleError(.conflict, "message \(messageId) was deleted") }
            try validateBody(body, context)
            return Decision(
                events: [event(.messageEdited(MessageEdited(messageId: messageId, body: body)), room: roomId)],
                facts: [memberFact(room, actor, me), Fact(.message(roomId: roomId, messageId: messageId), message.encoded)])

        case .delete(let roomId, let messageId):
            let room = try existing(state.room, roomId)
            let me = try joinedMember(actor, of: room)
            guard let message = room.messages[messageId] else { throw RuleError(.notFound, "no message \(messageId) in this room") }
            guard message.senderId == actor || me.role >= .admin else {
                throw RuleError(.forbidden, "only the sender or an admin deletes a message")
            }
            var facts = [memberFact(room, actor, me), Fact(.message(roomId: roomId, messageId: messageId), message.encoded)]
            if message.deleted { return Decision(events: [], facts: facts) }  // already deleted: nothing to do
            // A deleted message leaves the pins in the same step: whether it is pinned is a fact, so a pin that comes
            // between the read and the append is seen.
            let pinned = room.pins.contains(messageId)
            facts.append(pinFact(room, messageId))
            var events: [Event] = []
            if pinned {
                facts.append(pinCountFact(room))
                events.append(event(.messageUnpinned(MessagePin(messageId: messageId)), room: roomId))
            }
            events.append(event(.messageDeleted(MessageDeleted(messageId: messageId)), room: roomId))
            return Decision(events: events, facts: facts)

        case .invite(let roomId, let userId):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard me.role >= .admin else { throw RuleError(.forbidden, "only the owner or an admin invites") }
            guard state.knownUsers.contains(userId) else { throw RuleError(.notFound, "no user \(userId)") }
            let target = room.members[userId]
            switch target?.state {
            case .joined?: throw RuleError(.conflict, "\(userId) is already a member")
            case .invited?: throw RuleError(.conflict, "\(userId) is already invited")
            case .banned?: throw RuleError(.forbidden, "\(userId) is banned from this room: unban them first")
            default: break
            }
            // Read from the two users' direct room, another partition: checked when deciding, not again at the append.
            if state.blockers.contains(userId) { throw RuleError(.forbidden, "\(userId) does not take invites from you") }
            return Decision(
                events: [event(.memberInvited(MemberChange(userId: userId, role: .member)), room: roomId)],
                facts: [memberFact(room, actor, me), memberFact(room, userId, target)])

        case .join(let roomId), .decline(let roomId):
            let room = try existing(state.room, roomId)
            let mine = room.members[actor]
            if mine?.state == .joined { throw RuleError(.conflict, "already a member") }
            if mine?.state == .banned { throw RuleError(.forbidden, "you are banned from this room") }
            guard let mine, mine.state == .invited else { throw RuleError(.forbidden, "no pending invite to this room") }
            let change = MemberChange(userId: actor, role: mine.role)
            let data: EventData
            if case .join = command { data = .memberJoined(change) } else { data = .inviteDeclined(MemberChange(userId: actor)) }
            return Decision(events: [event(data, room: roomId)], facts: [memberFact(room, actor, mine)])

        case .leave(let roomId):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            var events: [Event] = []
            var facts = [memberFact(room, actor, me)]
            if me.role == .owner {
                // The owner hands the room on; the choice depends on every member, so the
                // whole membership (its version) is a fact.
                facts.append(Fact(.room(roomId: roomId, field: "ver"), String(room.version)))
                if let heir = room.successor(excluding: actor) {
                    events.append(event(.memberRoleChanged(MemberChange(userId: heir, role: .owner)), room: roomId))
                }
            }
            events.append(event(.memberLeft(MemberChange(userId: actor)), room: roomId))
            return Decision(events: events, facts: facts)

        case .remove(let roomId, let userId):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard userId != actor else { throw RuleError(.conflict, "use leave to leave a room") }
            guard me.role >= .admin else { throw RuleError(.forbidden, "only the owner or an admin removes members") }
            guard let target = room.members[userId], target.state == .joined || target.state == .invited else {
                throw RuleError(.notFound, "\(userId) is not a member or invitee of this room")
            }
            guard target.role < me.role else { throw RuleError(.forbidden, "an admin removes members only, not admins or the owner") }
            return Decision(
                events: [event(.memberRemoved(MemberChange(userId: userId, previousState: target.state)), room: roomId)],
                facts: [memberFact(room, actor, me), memberFact(room, userId, target)])

        case .setRole(let roomId, let userId, let role):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard me.role == .owner else { throw RuleError(.forbidden, "only the owner sets roles") }
            guard role != .owner else { throw RuleError(.invalidRequest, "role must be admin or member") }
            guard userId != actor else { throw RuleError(.conflict, "the owner keeps the owner role") }
            guard let target = room.joined(userId) else { throw RuleError(.notFound, "\(userId) is not a member of this room") }
            let facts = [memberFact(room, actor, me), memberFact(room, userId, target)]
            if target.role == role { return Decision(events: [], facts: facts) }
            return Decision(events: [event(.memberRoleChanged(MemberChange(userId: userId, role: role)), room: roomId)], facts: facts)

        case .rename(let roomId, let name):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard me.role >= .admin else { throw RuleError(.forbidden, "only the owner or an admin renames the room") }
            let name = try validateName(name, context)
            return Decision(events: [event(.roomRenamed(RoomRenamed(name: name)), room: roomId)], facts: [memberFact(room, actor, me)])

        case .markRead(let roomId, let seq):
            let room = try existing(state.room, roomId)
            let me = try joinedMember(actor, of: room)
            guard seq >= 0 else { throw RuleError(.invalidRequest, "seq must not be negative") }
            // A well-formed receipt for a message the room does not have (yet): a conflict
            // with the room's state, not a malformed request.
            guard seq <= room.lastSeq else {
                throw RuleError(.conflict, "seq must be between 0 and \(room.lastSeq), the room's last message")
            }
            return Decision(events: [event(.roomRead(RoomRead(seq: seq)), room: roomId)], facts: [memberFact(room, actor, me)])

        case .react(let roomId, let messageId, let emoji), .unreact(let roomId, let messageId, let emoji):
            let room = try existing(state.room, roomId)
            let me = try joinedMember(actor, of: room)
            try notMuted(me, context)
            try validateEmoji(emoji, context)
            guard let message = room.messages[messageId] else { throw RuleError(.notFound, "no message \(messageId) in this room") }
            guard !message.deleted else { throw RuleError(.conflict, "message \(messageId) was deleted") }
            let key = RoomState.reactionKey(messageId, actor)
            let mine = room.reactions[key] ?? []
            let facts = [
                memberFact(room, actor, me), Fact(.message(roomId: roomId, messageId: messageId), message.encoded),
                Fact(.reactions(roomId: roomId, messageId: messageId, userId: actor), mine.isEmpty ? nil : RoomState.encodeReactions(mine)),
            ]
            let reaction = Reaction(messageId: messageId, emoji: emoji)
            if case .unreact = command {
                guard mine.contains(emoji) else { return Decision(events: [], facts: facts) }  // not there: nothing to do
                return Decision(events: [event(.reactionRemoved(reaction), room: roomId)], facts: facts)
            }
            if mine.contains(emoji) { return Decision(events: [], facts: facts) }  // there already: nothing to do
            guard mine.count < context.maxReactionsPerUser else {
                throw RuleError(.conflict, "at most \(context.maxReactionsPerUser) different reactions per person on a message")
            }
            return Decision(events: [event(.reactionAdded(reaction), room: roomId)], facts: facts)

        case .ban(let roomId, let userId, let reason):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard userId != actor else { throw RuleError(.conflict, "you cannot ban yourself: leave the room instead") }
            guard me.role >= .admin else { throw RuleError(.forbidden, "only the owner or an admin bans") }
            guard state.knownUsers.contains(userId) || room.members[userId] != nil else { throw RuleError(.notFound, "no user \(userId)") }
            let target = room.members[userId]
            try outranks(me, target)
            let reason = try validateReason(reason, context)
            let facts = [memberFact(room, actor, me), memberFact(room, userId, target)]
            if target?.state == .banned { return Decision(events: [], facts: facts) }  // banned already
            let change = MemberChange(userId: userId, previousState: target?.state, reason: reason)
            return Decision(events: [event(.memberBanned(change), room: roomId)], facts: facts)

        case .unban(let roomId, let userId):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard me.role >= .admin else { throw RuleError(.forbidden, "only the owner or an admin unbans") }
            let target = room.members[userId]
            let facts = [memberFact(room, actor, me), memberFact(room, userId, target)]
            guard target?.state == .banned else { return Decision(events: [], facts: facts) }  // not banned: nothing to do
            return Decision(events: [event(.memberUnbanned(MemberChange(userId: userId)), room: roomId)], facts: facts)

        case .mute(let roomId, let userId, let until):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard userId != actor else { throw RuleError(.conflict, "you cannot mute yourself") }
            guard me.role >= .admin else { throw RuleError(.forbidden, "only the owner or an admin mutes") }
            guard let target = room.members[userId], target.state == .joined || target.state == .invited else {
                throw RuleError(.notFound, "\(userId) is not a member or invitee of this room")
            }
            try outranks(me, target)
            // A well-formed time that has passed: refused by the clock, not malformed (like a receipt past the last seq).
            if let until, until <= context.now { throw RuleError(.conflict, "until must be in the future") }
            let facts = [memberFact(room, actor, me), memberFact(room, userId, target)]
            let wanted = until.map(unixMilliseconds) ?? .max
            if target.mutedUntil == wanted { return Decision(events: [], facts: facts) }  // muted so already
            return Decision(events: [event(.memberMuted(MemberChange(userId: userId, until: until)), room: roomId)], facts: facts)

        case .unmute(let roomId, let userId):
            let room = try existing(state.room, roomId)
            try groupOnly(room)
            let me = try joinedMember(actor, of: room)
            guard me.role >= .admin else { throw RuleError(.forbidden, "only the owner or an admin unmutes") }
            guard let target = room.members[userId] else { throw RuleError(.notFound, "\(userId) is not a member of this room") }
            try outranks(me, target)
            let facts = [memberFact(room, actor, me), memberFact(room, userId, target)]
            guard target.mutedUntil != nil else { return Decision(events: [], facts: facts) }  // not muted
            return Decision(events: [event(.memberUnmuted(MemberChange(userId: userId)), room: roomId)], facts: facts)

        case .block(let userId), .unblock(let userId):
            guard userId != actor else { throw RuleError(.conflict, "you cannot block yourself") }
            guard state.knownUsers.contains(userId) else { throw RuleError(.notFound, "no user \(userId)") }
            let roomId = Partitioning.directRoomId(actor, userId)
            let blocking = state.blockers.contains(actor)
            let facts = [Fact(.block(roomId: roomId, userId: actor), blocking ? "1" : nil)]
            if case .block = command {
                if blocking { return Decision(events: [], facts: facts) }
                return Decision(events: [event(.userBlocked(UserBlock(userId: userId)), room: roomId)], facts: facts)
            }
            guard blocking else { return Decision(events: [], facts: facts) }
            return Decision(events: [event(.userUnblocked(UserBlock(userId: userId)), room: roomId)], facts: facts)

        case .pin(let roomId, let messageId), .unpin(let roomId, let messageId):
            let room = try existing(state.room, roomId)
            let me = try joinedMember(actor, of: room)
            guard room.kind == .direct || me.role >= .admin else {
                throw RuleError(.forbidden, "only the owner or an admin pins messages in a group")
            }
            try notMuted(me, context)
            guard let message = room.messages[messageId] else { throw RuleError(.notFound, "no message \(messageId) in this room") }
            let pinned = room.pins.contains(messageId)
            let facts = [
                memberFact(room, actor, me), Fact(.message(roomId: roomId, messageId: messageId), message.encoded),
                pinFact(room, messageId), pinCountFact(room),
            ]
            let pin = MessagePin(messageId: messageId)
            if case .unpin = command {
                guard pinned else { return Decision(events: [], facts: facts) }  // not pinned: nothing to do
                return Decision(events: [event(.messageUnpinned(pin), room: roomId)], facts: facts)
            }
            guard !message.deleted else { throw RuleError(.conflict, "message \(messageId) was deleted") }
            if pinned { return Decision(events: [], facts: facts) }  // pinned already: nothing to do
            guard room.pinCount < context.maxPinsPerRoom else {
                throw RuleError(.conflict, "a room has at most \(context.maxPinsPerRoom) pinned messages: unpin one first")
            }
            return Decision(events: [event(.messagePinned(pin), room: roomId)], facts: facts)
        }
    }

    // MARK: - Checks shared by several commands

    static func existing(_ room: RoomState?, _ roomId: String) throws(RuleError) -> RoomState {
        guard let room else { throw RuleError(.notFound, "no room \(roomId)") }
        return room
    }

    static func joinedMember(_ userId: String, of room: RoomState) throws(RuleError) -> RoomState.Member {
        guard let member = room.joined(userId) else { throw RuleError(.notAMember, "not a member of room \(room.id)") }
        return member
    }

    static func groupOnly(_ room: RoomState) throws(RuleError) {
        guard room.kind == .group else { throw RuleError(.forbidden, "a direct room has no invites, roles, names or leaving") }
    }

    static func memberFact(_ room: RoomState, _ userId: String, _ member: RoomState.Member?) -> Fact {
        Fact(.member(roomId: room.id, userId: userId), member?.encoded)
    }

    /// A muted member reads but does not send, edit, react or pin.
    static func notMuted(_ member: RoomState.Member, _ context: DecisionContext) throws(RuleError) {
        guard member.isMuted(at: context.now) else { return }
        if let until = member.mutedUntil, until != .max {
            throw RuleError(
                .forbidden, "you are muted in this room until \(formatTimestamp(Date(timeIntervalSince1970: Double(until) / 1000)))")
        }
        throw RuleError(.forbidden, "you are muted in this room")
    }

    /// Whether `other` blocks the actor: a private message or invite from them is refused.
    static func notBlocked(by other: String, _ state: DecisionState) throws(RuleError) {
        if state.blockers.contains(other) { throw RuleError(.forbidden, "\(other) does not take private messages from you") }
    }

    /// Owner over admin over member; nobody over the owner. A user who is not in the room (or only was) counts as a member.
    static func outranks(_ me: RoomState.Member, _ target: RoomState.Member?) throws(RuleError) {
        let role = target.map { $0.state == .joined || $0.state == .invited ? $0.role : .member } ?? .member
        guard role < me.role else {
            throw RuleError(
                .forbidden, role == .owner ? "nobody acts over the owner" : "an admin acts over members only, not admins or the owner")
        }
    }

    static func validateReason(_ reason: String?, _ context: DecisionContext) throws(RuleError) -> String? {
        guard let trimmed = reason?.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty else { return nil }
        guard trimmed.count <= context.maxReasonLength else {
            throw RuleError(.invalidRequest, "a reason is at most \(context.maxReasonLength) characters")
        }
        try refuseNUL(trimmed, "a reason")
        return trimmed
    }

    static func pinFact(_ room: RoomState, _ messageId: String) -> Fact {
        Fact(.pin(roomId: room.id, messageId: messageId), room.pins.contains(messageId) ? "1" : nil)
    }

    /// The room's pin count as the guard state keeps it: absent when none.
    static func pinCountFact(_ room: RoomState) -> Fact {
        Fact(.room(roomId: room.id, field: "pins"), room.pinCount > 0 ? String(room.pinCount) : nil)
    }

    /// An emoji is 1 to `maxEmojiBytes` UTF-8 bytes with no white space (the guard state separates a user's reactions
    /// with spaces) and no U+0000.
    static func validateEmoji(_ emoji: String, _ context: DecisionContext) throws(RuleError) {
        guard !emoji.isEmpty, emoji.utf8.count <= context.maxEmojiBytes else {
            throw RuleError(.invalidRequest, "an emoji is 1 to \(context.maxEmojiBytes) bytes of UTF-8")
        }
        guard !emoji.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) else {
            throw RuleError(.invalidRequest, "an emoji has no white space or control characters")
        }
    }

    /// U+0000 cannot be stored in a PostgreSQL text value (libpq's parameters end at it, and
    /// the server refuses it), so a text that contains it could never reach the read models
    /// byte for byte: it is refused at the door, before anything is appended.
    static func refuseNUL(_ text: String, _ field: String) throws(RuleError) {
        guard !text.utf8.contains(0) else { throw RuleError(.invalidRequest, "\(field) must not contain U+0000 (NUL)") }
    }

    static func validateBody(_ body: String, _ context: DecisionContext) throws(RuleError) {
        guard body.contains(where: { !$0.isWhitespace }) else {
            throw RuleError(.invalidRequest, "the message body is empty")
        }
        try refuseNUL(body, "the message body")
        guard body.utf8.count <= context.maxMessageBytes else {
            throw RuleError(.tooLarge, "the message body is \(body.utf8.count) bytes, over the limit of \(context.maxMessageBytes)")
        }
    }

    static func validateClientMsgId(_ id: String?, _ context: DecisionContext) throws(RuleError) -> String? {
        guard let id else { return nil }
        // Unicode scalars, as JSON Schema's maxLength counts them (the OpenAPI document says 128).
        guard !id.isEmpty, id.unicodeScalars.count <= context.maxClientMsgIdLength else {
            throw RuleError(.invalidRequest, "clientMsgId must be 1 to \(context.maxClientMsgIdLength) characters")
        }
        try refuseNUL(id, "clientMsgId")
        return id
    }

    static func validateName(_ name: String, _ context: DecisionContext) throws(RuleError) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= context.maxNameLength else {
            throw RuleError(.invalidRequest, "a room name is 1 to \(context.maxNameLength) characters")
        }
        try refuseNUL(trimmed, "a room name")
        return trimmed
    }

    static func validateUsername(_ name: String) throws(RuleError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
        guard (3...32).contains(name.count), name.allSatisfy(allowed.contains) else {
            throw RuleError(.invalidRequest, "a username is 3 to 32 characters of a-z, 0-9, _ . -")
        }
    }
}
