import Drivers
import Events
import Foundation

/// The arguments of one `appendScript` call, built from a decision: the facts to check,
/// the events' bodies and digests, and each event's guard-state effects.
struct AppendRequest {
    private(set) var keys: [String]
    /// The script's ARGV.
    let arguments: [String]
    /// The events and their bodies, completed with what the script returns.
    private let events: [(event: Event, body: String)]
    /// The room after the events, as the rules fold it.
    let roomAfter: RoomState?

    enum Result {
        case appended([LoggedEvent])
        case duplicate(LoggedEvent)
        /// A repeat of a send whose entry was trimmed from the stream since: its event is in the archive.
        case duplicateTrimmed(entryID: String)
        case conflict
    }

    init(decision: Decision, state: DecisionState, keys guardKeys: GuardKeys, dedupe: DedupeWindow) throws {
        var keys = [guardKeys.stream, guardKeys.head]
        func index(_ key: String) -> Int {
            if let i = keys.firstIndex(of: key) { return i + 1 }
            keys.append(key)
            return keys.count
        }
        var facts = decision.facts
        // Membership changes are serialised per room: the version each relies on is a fact,
        // so that `ver` and every member's `since` are what a replay of the log computes.
        if let room = state.room, decision.events.contains(where: { $0.data.member != nil }),
            !facts.contains(where: { $0.subject == .room(roomId: room.id, field: "ver") })
        {
            facts.append(Fact(.room(roomId: room.id, field: "ver"), String(room.version)))
        }
        var arguments = [String(facts.count)]
        for fact in facts {
            let (key, field) = guardKeys.location(of: fact.subject)
            if case .message(let roomId, let messageId) = fact.subject, let evictions = state.coldMessages[messageId],
                let expected = fact.expected
            {
                // Read from the archive: still absent from the guard state, and no eviction in the room since it was read.
                arguments += [String(index(key)), field, expected, "2", String(index(guardKeys.room(roomId))), evictions]
            } else {
                arguments += [String(index(key)), field, fact.expected ?? "", fact.expected == nil ? "1" : "0"]
            }
        }
        if let key = decision.clientMessageKey, let at = decision.events.first?.at {
            // This window's ids and the last one's: a repeat within the window's length is in one of them.
            let bucket = dedupe.bucket(at)
            arguments += [
                String(index(guardKeys.clientMessages(key.roomId, bucket: bucket))),
                String(index(guardKeys.clientMessages(key.roomId, bucket: bucket - 1))), GuardKeys.clientMessageField(key),
            ]
        } else {
            arguments += ["", "", ""]
        }
        arguments.append(String(decision.events.count))
        var room = state.room
        var bodies: [(event: Event, body: String)] = []
        for event in decision.events {
            let after = Rules.evolve(room, event)
            let body = try HashChain.body(of: event)
            bodies.append((event, body))
            var seqKey = ""
            var ops: [String] = []
            for effect in GuardEffects.of(
                event, before: room, after: after, clientMessageKey: decision.clientMessageKey, dedupe: dedupe)
            {
                switch effect {
                case .set(let key, let field, let value): ops += ["set", String(index(key(guardKeys))), field, value]
                case .remove(let key, let field): ops += ["hdel", String(index(key(guardKeys))), field, ""]
                case .expireAt(let key, let ms): ops += ["expireat", String(index(key(guardKeys))), "", String(ms)]
                case .addToSet(let key, let value): ops += ["sadd", String(index(key(guardKeys))), "", value]
                case .removeFromSet(let key, let value): ops += ["srem", String(index(key(guardKeys))), "", value]
                case .entryID(let key, let field): ops += ["id", String(index(key(guardKeys))), field, ""]
                case .assignSeq(let key): seqKey = String(index(key(guardKeys)))
                }
            }
            arguments += [body, HashChain.digest(body), seqKey, String(ops.count / 4)] + ops
            room = after
        }
        self.arguments = arguments
        self.roomAfter = room
        self.keys = keys + [guardKeys.lostEntries]  // last: the script finds it as KEYS[#KEYS]
        self.events = bodies
    }

    func parse(_ reply: RedisValue, partition: Int) throws -> Result {
        // An error reply stays a Redis error: a refusal for Redis's state (`OOM`, `READONLY`, …) is then transient.
        if case .error = reply { _ = try reply.orThrow() }
        guard let items = reply.array, let kind = items.first?.string else {
            throw EventLog.Failure(description: "append script answered \(reply)")
        }
        switch kind {
        case "conflict":
            return .conflict
        case "lost":
            throw EventLog.LostEntries(partition: partition, detail: items.count > 1 ? items[1].string ?? "" : "")
        case "dup":
            guard items.count == 3, let id = items[1].string, let json = items[2].string else { break }
            if json.isEmpty { return .duplicateTrimmed(entryID: id) }
            return .duplicate(LoggedEvent(partition: partition, entryID: id, event: try EventCodec.decode(json), json: json))
        case "ok":
            guard items.count == 1 + 4 * events.count else { break }
            var logged: [LoggedEvent] = []
            for (i, (event, body)) in events.enumerated() {
                let at = 1 + 4 * i
                guard let id = items[at].string, let seqText = items[at + 1].string, let prevHash = items[at + 2].string,
                    let hash = items[at + 3].string
                else { break }
                var event = event
                event.seq = Int64(seqText)
                event.prevHash = prevHash
                event.hash = hash
                let json = body + HashChain.suffix(seq: event.seq, prevHash: prevHash, hash: hash)
                logged.append(LoggedEvent(partition: partition, entryID: id, event: event, json: json))
            }
            if logged.count == events.count { return .appended(logged) }
        default:
            break
        }
        throw EventLog.Failure(description: "append script answered \(reply)")
    }
}

/// What an event changes in the guard state: derived from the event and the room before
/// and after it, so that live appends and a rebuild from the log write the same values.
enum GuardEffect {
    case set(key: @Sendable (GuardKeys) -> String, field: String, value: String)
    /// Remove a hash field (a user's last reaction to a message, an unpinned message).
    case remove(key: @Sendable (GuardKeys) -> String, field: String)
    /// Store the entry id the event gets (client message ids point at their message).
    case entryID(key: @Sendable (GuardKeys) -> String, field: String)
    /// The event is a message: take the next `seq` of this room key.
    case assignSeq(key: @Sendable (GuardKeys) -> String)
    case addToSet(key: @Sendable (GuardKeys) -> String, value: String)
    case removeFromSet(key: @Sendable (GuardKeys) -> String, value: String)
    /// The key goes at this Unix time in milliseconds (a window of client message ids).
    case expireAt(key: @Sendable (GuardKeys) -> String, milliseconds: Int64)
}

enum GuardEffects {
    static func of(
        _ event: Event, before: RoomState?, after: RoomState?, clientMessageKey: ClientMessageKey?, dedupe: DedupeWindow
    ) -> [GuardEffect] {
        let roomId = event.roomId ?? ""
        switch event.data {
        case .userRegistered(let user):
            return [
                .set(key: { $0.usernames }, field: user.username, value: user.userId),
                .set(key: { $0.users }, field: user.userId, value: user.username),
            ]
        case .roomCreated(let created):
            var effects: [GuardEffect] = [
                .set(key: { $0.room(roomId) }, field: "kind", value: created.kind.rawValue),
                .set(key: { $0.room(roomId) }, field: "ver", value: String(after?.version ?? 1)),
            ]
            for (userId, member) in (after?.members ?? [:]).sorted(by: { $0.key < $1.key }) {
                effects.append(.set(key: { $0.members(roomId) }, field: userId, value: member.encoded))
                if member.state == .joined { effects.append(.addToSet(key: { $0.joined(userId) }, value: roomId)) }
            }
            if created.kind == .direct, let members = created.members, members.count == 2 {
                effects.append(.set(key: { $0.direct }, field: members.sorted().joined(separator: "|"), value: roomId))
            }
            return effects
        case .memberInvited(let m), .inviteDeclined(let m), .memberJoined(let m), .memberLeft(let m), .memberRemoved(let m),
            .memberRoleChanged(let m), .memberBanned(let m), .memberUnbanned(let m), .memberMuted(let m), .memberUnmuted(let m):
            guard let member = after?.members[m.userId] else { return [] }
            let userId = m.userId
            return [
                .set(key: { $0.members(roomId) }, field: userId, value: member.encoded),
                .set(key: { $0.room(roomId) }, field: "ver", value: String(after?.version ?? 0)),
                member.state == .joined
                    ? .addToSet(key: { $0.joined(userId) }, value: roomId) : .removeFromSet(key: { $0.joined(userId) }, value: roomId),
            ]
        case .messageSent(let sent):
            var effects: [GuardEffect] = [
                .assignSeq(key: { $0.room(roomId) }),
                .set(
                    key: { $0.messages(roomId) }, field: sent.messageId,
                    value: RoomState.MessageRecord(senderId: event.actorId, deleted: false, inThread: sent.threadRootId != nil).encoded),
            ]
            if let key = clientMessageKey {
                let bucket = dedupe.bucket(event.at)
                effects.append(.entryID(key: { $0.clientMessages(key.roomId, bucket: bucket) }, field: GuardKeys.clientMessageField(key)))
                effects.append(.expireAt(key: { $0.clientMessages(key.roomId, bucket: bucket) }, milliseconds: dedupe.expiry(of: bucket)))
            }
            return effects
        case .messageDeleted(let deleted):
            guard let record = after?.messages[deleted.messageId] else { return [] }
            return [.set(key: { $0.messages(roomId) }, field: deleted.messageId, value: record.encoded)]
        case .reactionAdded(let reaction), .reactionRemoved(let reaction):
            let field = RoomState.reactionKey(reaction.messageId, event.actorId)
            guard let emoji = after?.reactions[field] else { return [.remove(key: { $0.reactions(roomId) }, field: field)] }
            return [.set(key: { $0.reactions(roomId) }, field: field, value: RoomState.encodeReactions(emoji))]
        case .messagePinned(let pin), .messageUnpinned(let pin):
            let count = after?.pinCount ?? 0
            let pinned = after?.pins.contains(pin.messageId) ?? false
            return [
                pinned
                    ? .set(key: { $0.pins(roomId) }, field: pin.messageId, value: "1")
                    : .remove(key: { $0.pins(roomId) }, field: pin.messageId),
                count > 0
                    ? .set(key: { $0.room(roomId) }, field: "pins", value: String(count))
                    : .remove(key: { $0.room(roomId) }, field: "pins"),
            ]
        case .userBlocked:
            return [.set(key: { $0.blocks(roomId) }, field: event.actorId, value: "1")]
        case .userUnblocked:
            return [.remove(key: { $0.blocks(roomId) }, field: event.actorId)]
        case .messageEdited, .roomRenamed, .roomRead:
            return []
        }
    }
}
