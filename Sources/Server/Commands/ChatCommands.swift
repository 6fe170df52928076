import EventLog
import Events
import Foundation

/// Every command a client can give, whichever way it comes (an HTTP route or a WebSocket
/// frame): each goes through the caller's limits and the log's rules and returns the
/// wire value both ways send. A refusal is the rules' `RuleError` (or an `APIError` for a
/// limit), which both ways turn into the same code and message.
struct ChatCommands: Sendable {
    let log: EventLog
    /// What one user may append, per kind of command, HTTP and WebSocket together.
    let limits: CommandLimits
    /// Where a receipt is checked before it is appended: one that does not move the reader's position appends nothing.
    let readPositions: @Sendable (_ userId: String, _ roomId: String) async throws -> Int64?
    /// What this instance learnt of those positions lately: a repeated receipt is skipped without reading the read model.
    let receipts = ReceiptPositions()

    /// Where a message goes: a room, or the direct room with a user (made by the first message).
    enum Destination: Sendable {
        case room(String)
        case user(String)
    }

    /// What a send did.
    struct Sent: Sendable {
        let message: MessageJSON
        /// For a message to a user: the direct room, as created now or as it was.
        let room: RoomJSON?
        /// The same `clientMsgId` was sent before: `message` is that first message.
        let duplicate: Bool
    }

    /// Takes a token of `actor`'s send bucket (429 `rate_limited` when it is empty). Both
    /// ways call it before anything else about a send, then `send`.
    func admitSend(_ actor: String) throws {
        try limits.admit(.sends, actor)
    }

    /// Sends a message (admitted by `admitSend` first).
    func send(
        _ actor: String, to destination: Destination, body: String, clientMsgId: String?, replyTo: String?, threadRootId: String? = nil,
        mentions: [String] = []
    ) async throws -> Sent {
        let command: Command
        switch destination {
        case .room(let roomId):
            command = .send(
                roomId: roomId, messageId: newID(), body: body, clientMsgId: clientMsgId, replyTo: replyTo, threadRootId: threadRootId,
                mentions: mentions)
        case .user(let to):
            guard threadRootId == nil, mentions.isEmpty else {
                throw APIError.invalid("a first private message has no thread or mentions: send them in the room")
            }
            command = .sendDirect(to: to, messageId: newID(), body: body, clientMsgId: clientMsgId)
        }
        let outcome = try await log.execute(command, actor: actor)
        guard let sent = outcome.events.last, let message = MessageJSON(sent) else { throw APIError.invalid("nothing was sent") }
        var room: RoomJSON?
        if case .user(let to) = destination {
            let members = [actor, to].sorted().map { MemberJSON(userId: $0, role: .member, state: .joined) }
            room = RoomJSON(created: outcome.events) ?? RoomJSON(id: message.roomId, kind: .direct, members: members)
        }
        return Sent(message: message, room: room, duplicate: outcome.duplicate)
    }

    /// A read receipt up to `seq`. A receipt at or below where the reader already is (as the read model knows it)
    /// appends nothing: a client that repeats its receipt, or an old one, grows nothing. One that moves takes a token.
    func markRead(_ actor: String, roomId: String, seq: Int64) async throws {
        if let known = receipts.position(actor, roomId), seq >= 0, seq <= known { return }
        if let read = try await readPositions(actor, roomId) {
            receipts.learn(actor, roomId, seq: read)
            if seq >= 0, seq <= read { return }
        }
        try limits.admit(.receipts, actor)
        try await log.execute(.markRead(roomId: roomId, seq: seq), actor: actor)
        receipts.learn(actor, roomId, seq: seq)
    }

    func edit(_ actor: String, roomId: String, messageId: String, body: String) async throws -> EditedJSON {
        try limits.admit(.edits, actor)
        let outcome = try await log.execute(.edit(roomId: roomId, messageId: messageId, body: body), actor: actor)
        return EditedJSON(id: messageId, roomId: roomId, body: body, editedAt: outcome.events.first?.event.at ?? Date())
    }

    func delete(_ actor: String, roomId: String, messageId: String) async throws -> DeletedJSON {
        try limits.admit(.edits, actor)
        try await log.execute(.delete(roomId: roomId, messageId: messageId), actor: actor)
        return DeletedJSON(id: messageId, roomId: roomId, deleted: true)
    }

    func createRoom(_ actor: String, name: String, invite: [String]) async throws -> RoomJSON {
        try limits.admit(.rooms, actor)
        let outcome = try await log.execute(.createGroup(roomId: "r-" + newID(), name: name, invite: invite), actor: actor)
        guard let room = RoomJSON(created: outcome.events) else { throw APIError.invalid("the room was not created") }
        return room
    }

    /// Renames a room; returns the name as stored (trimmed).
    func rename(_ actor: String, roomId: String, name: String) async throws -> String {
        try limits.admit(.membership, actor)
        try await log.execute(.rename(roomId: roomId, name: name), actor: actor)
        return name.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func invite(_ actor: String, roomId: String, userId: String) async throws {
        try limits.admit(.membership, actor)
        try await log.execute(.invite(roomId: roomId, userId: userId), actor: actor)
    }

    /// What a user does about their own membership of a room.
    enum MembershipAction: String, CaseIterable, Sendable {
        case join, decline, leave
    }

    func membership(_ actor: String, _ action: MembershipAction, roomId: String) async throws {
        try limits.admit(.membership, actor)
        let command: Command
        switch action {
        case .join: command = .join(roomId: roomId)
        case .decline: command = .decline(roomId: roomId)
        case .leave: command = .leave(roomId: roomId)
        }
        try await log.execute(command, actor: actor)
    }

    func remove(_ actor: String, roomId: String, userId: String) async throws {
        try limits.admit(.membership, actor)
        try await log.execute(.remove(roomId: roomId, userId: userId), actor: actor)
    }

    func setRole(_ actor: String, roomId: String, userId: String, role: Role) async throws {
        try limits.admit(.membership, actor)
        try await log.execute(.setRole(roomId: roomId, userId: userId, role: role), actor: actor)
    }

    /// Adds or removes the actor's reaction; returns whether it appended (false: it was there already, or not there).
    func react(_ actor: String, roomId: String, messageId: String, emoji: String, add: Bool) async throws -> Bool {
        try limits.admit(.reactions, actor)
        let command: Command =
            add ? .react(roomId: roomId, messageId: messageId, emoji: emoji) : .unreact(roomId: roomId, messageId: messageId, emoji: emoji)
        return !(try await log.execute(command, actor: actor).events.isEmpty)
    }

    /// Pins or unpins a message; returns whether it appended (false: it was pinned already, or not pinned).
    func pin(_ actor: String, roomId: String, messageId: String, pinned: Bool) async throws -> Bool {
        try limits.admit(.membership, actor)
        let command: Command = pinned ? .pin(roomId: roomId, messageId: messageId) : .unpin(roomId: roomId, messageId: messageId)
        return !(try await log.execute(command, actor: actor).events.isEmpty)
    }

    /// What a moderation command does, and to whom (bans and mutes in a room, blocks between two users).
    enum Moderation: Sendable {
        case ban(roomId: String, reason: String?)
        case unban(roomId: String)
        case mute(roomId: String, until: Date?)
        case unmute(roomId: String)
        case block
        case unblock
    }

    /// Bans, mutes or blocks `userId`; returns whether it appended (false: it was so already).
    func moderate(_ actor: String, _ action: Moderation, userId: String) async throws -> Bool {
        try limits.admit(.membership, actor)
        let command: Command
        switch action {
        case .ban(let roomId, let reason): command = .ban(roomId: roomId, userId: userId, reason: reason)
        case .unban(let roomId): command = .unban(roomId: roomId, userId: userId)
        case .mute(let roomId, let until):
            // To the millisecond, as the log keeps times.
            command = .mute(roomId: roomId, userId: userId, until: until.map(millisecondPrecision))
        case .unmute(let roomId): command = .unmute(roomId: roomId, userId: userId)
        case .block: command = .block(userId: userId)
        case .unblock: command = .unblock(userId: userId)
        }
        return !(try await log.execute(command, actor: actor).events.isEmpty)
    }
}
