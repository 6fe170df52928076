import Foundation

/// The second half of the log's own event reader: an event's `data` object, checked
/// field by field for its type (see `EventCodec.read`).
extension JSONReader {
    /// `data` as `type` has it, with the fields JSONDecoder would require and allow.
    static func eventData(_ type: EventType, _ fields: [String: DataValue]) -> EventData? {
        var used = 0
        /// A required string.
        func text(_ key: String) -> String? {
            guard case .string(let value)? = fields[key] else { return nil }
            used += 1
            return value
        }
        /// An optional string: absent or null is nil; any other kind of value fails.
        func optional(_ key: String) -> String?? {
            switch fields[key] {
            case nil: return .some(nil)
            case .null?:
                used += 1
                return .some(nil)
            case .string(let value)?:
                used += 1
                return .some(value)
            default: return nil
            }
        }
        let data: EventData?
        switch type {
        case .userRegistered:
            guard let userId = text("userId"), let username = text("username"), let displayName = text("displayName"),
                let passwordHash = text("passwordHash")
            else { return nil }
            data = .userRegistered(UserRegistered(userId: userId, username: username, displayName: displayName, passwordHash: passwordHash))
        case .roomCreated:
            guard let kind = text("kind").flatMap(RoomKind.init(rawValue:)), let name = optional("name") else { return nil }
            var members: [String]?
            switch fields["members"] {
            case nil: break
            case .null?: used += 1
            case .strings(let list)?:
                members = list
                used += 1
            default: return nil
            }
            data = .roomCreated(RoomCreated(kind: kind, name: name, members: members))
        case .memberInvited, .inviteDeclined, .memberJoined, .memberLeft, .memberRemoved, .memberRoleChanged, .memberBanned,
            .memberUnbanned, .memberMuted, .memberUnmuted:
            guard let userId = text("userId"), let roleText = optional("role"), let previousText = optional("previousState"),
                let reason = optional("reason"), let untilText = optional("until")
            else {
                return nil
            }
            var until: Date?
            if let untilText {
                guard let parsed = parseTimestamp(untilText) else { return nil }
                until = parsed
            }
            var role: Role?
            if let roleText {
                guard let known = Role(rawValue: roleText) else { return nil }
                role = known
            }
            var previous: MemberState?
            if let previousText {
                guard let known = MemberState(rawValue: previousText) else { return nil }
                previous = known
            }
            let change = MemberChange(userId: userId, role: role, previousState: previous, reason: reason, until: until)
            switch type {
            case .memberInvited: data = .memberInvited(change)
            case .inviteDeclined: data = .inviteDeclined(change)
            case .memberJoined: data = .memberJoined(change)
            case .memberLeft: data = .memberLeft(change)
            case .memberRemoved: data = .memberRemoved(change)
            case .memberBanned: data = .memberBanned(change)
            case .memberUnbanned: data = .memberUnbanned(change)
            case .memberMuted: data = .memberMuted(change)
            case .memberUnmuted: data = .memberUnmuted(change)
            default: data = .memberRoleChanged(change)
            }
        case .roomRenamed:
            guard let name = text("name") else { return nil }
            data = .roomRenamed(RoomRenamed(name: name))
        case .messageSent:
            guard let messageId = text("messageId"), let body = text("body"), let clientMsgId = optional("clientMsgId"),
                let replyTo = optional("replyTo"), let threadRootId = optional("threadRootId")
            else { return nil }
            var mentions: [String]?
            switch fields["mentions"] {
            case nil: break
            case .strings(let list)?:
                mentions = list
                used += 1
            default: return nil
            }
            data = .messageSent(
                MessageSent(
                    messageId: messageId, body: body, clientMsgId: clientMsgId, replyTo: replyTo, threadRootId: threadRootId,
                    mentions: mentions))
        case .messageEdited:
            guard let messageId = text("messageId"), let body = text("body") else { return nil }
            data = .messageEdited(MessageEdited(messageId: messageId, body: body))
        case .messageDeleted:
            guard let messageId = text("messageId") else { return nil }
            data = .messageDeleted(MessageDeleted(messageId: messageId))
        case .roomRead:
            guard case .integer(let seq)? = fields["seq"] else { return nil }
            used += 1
            data = .roomRead(RoomRead(seq: seq))
        case .reactionAdded, .reactionRemoved:
            guard let messageId = text("messageId"), let emoji = text("emoji") else { return nil }
            let reaction = Reaction(messageId: messageId, emoji: emoji)
            data = type == .reactionAdded ? .reactionAdded(reaction) : .reactionRemoved(reaction)
        case .userBlocked, .userUnblocked:
            guard let userId = text("userId") else { return nil }
            data = type == .userBlocked ? .userBlocked(UserBlock(userId: userId)) : .userUnblocked(UserBlock(userId: userId))
        case .messagePinned, .messageUnpinned:
            guard let messageId = text("messageId") else { return nil }
            let pin = MessagePin(messageId: messageId)
            data = type == .messagePinned ? .messagePinned(pin) : .messageUnpinned(pin)
        }
        // A field this reader does not know: leave the event to JSONDecoder.
        return used == fields.count ? data : nil
    }
}
