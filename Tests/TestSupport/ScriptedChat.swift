import EventLog
import Events
import Foundation

extension EventLog {
    /// Users ada, bea, cyd and a scripted history with every kind of event: a group
    /// `club` with an invite, a join, a role change, sends with a reply, two edits, a
    /// deletion, a rename and a read receipt, then a private message. Returns the user ids
    /// by name.
    public func scriptedChat() async throws -> [String: String] {
        var ids: [String: String] = [:]
        for name in ["ada", "bea", "cyd"] {
            let id = "u-\(name)-\(newID().prefix(6))"
            try await execute(
                .register(userId: id, username: name, displayName: name.capitalized, passwordHash: "$2b$12$hash-of-\(name)"), actor: id)
            ids[name] = id
        }
        let (ada, bea, cyd) = (ids["ada"]!, ids["bea"]!, ids["cyd"]!)
        try await execute(.createGroup(roomId: "club", name: "Club", invite: [bea, cyd]), actor: ada)
        try await execute(.join(roomId: "club"), actor: bea)
        try await execute(.setRole(roomId: "club", userId: bea, role: .admin), actor: ada)
        try await execute(.send(roomId: "club", messageId: "c1", body: "hello", clientMsgId: "k1", replyTo: nil), actor: bea)
        try await execute(.send(roomId: "club", messageId: "c2", body: "hi bea", clientMsgId: nil, replyTo: "c1"), actor: ada)
        try await execute(.edit(roomId: "club", messageId: "c1", body: "hello!"), actor: bea)
        try await execute(.edit(roomId: "club", messageId: "c1", body: "hello!!"), actor: bea)
        try await execute(.send(roomId: "club", messageId: "c3", body: "oops", clientMsgId: nil, replyTo: nil), actor: ada)
        try await execute(.delete(roomId: "club", messageId: "c3"), actor: bea)
        try await execute(.rename(roomId: "club", name: "The Club"), actor: bea)
        try await execute(.markRead(roomId: "club", seq: 2), actor: bea)
        try await execute(.sendDirect(to: cyd, messageId: "d1", body: "psst", clientMsgId: "k2"), actor: ada)
        return ids
    }
}

extension EventLog {
    /// After `scriptedChat`: reactions (added, repeated, taken back), pins (pinned, unpinned, and a pinned message deleted,
    /// which unpins it), read receipts, a mute, a ban, a block and a thread with a mention in `club`, as ada (the owner),
    /// bea (an admin) and cyd (an invitee) would give them.
    public func reactionsPinsAndModeration(_ ids: [String: String]) async throws {
        let (ada, bea, cyd) = (ids["ada"]!, ids["bea"]!, ids["cyd"]!)
        try await execute(.react(roomId: "club", messageId: "c1", emoji: "👍"), actor: ada)
        try await execute(.react(roomId: "club", messageId: "c1", emoji: "🎉"), actor: ada)
        try await execute(.react(roomId: "club", messageId: "c1", emoji: "👍"), actor: bea)
        try await execute(.react(roomId: "club", messageId: "c2", emoji: "❤️"), actor: bea)
        try await execute(.unreact(roomId: "club", messageId: "c1", emoji: "🎉"), actor: ada)
        try await execute(.pin(roomId: "club", messageId: "c1"), actor: bea)
        try await execute(.pin(roomId: "club", messageId: "c2"), actor: ada)
        try await execute(.unpin(roomId: "club", messageId: "c2"), actor: bea)
        try await execute(.send(roomId: "club", messageId: "c4", body: "pin and go", clientMsgId: nil, replyTo: nil), actor: ada)
        try await execute(.pin(roomId: "club", messageId: "c4"), actor: ada)
        try await execute(.react(roomId: "club", messageId: "c4", emoji: "👀"), actor: bea)
        try await execute(.delete(roomId: "club", messageId: "c4"), actor: ada)
        try await execute(.markRead(roomId: "club", seq: 4), actor: bea)
        try await execute(.mute(roomId: "club", userId: cyd, until: nil), actor: bea)
        try await execute(.unmute(roomId: "club", userId: cyd), actor: ada)
        try await execute(.mute(roomId: "club", userId: cyd, until: Date(timeIntervalSince1970: 4_102_444_800)), actor: ada)
        try await execute(.ban(roomId: "club", userId: cyd, reason: "spam"), actor: ada)
        try await execute(.block(userId: cyd), actor: ada)
        try await execute(.block(userId: ada), actor: bea)
        try await execute(.unblock(userId: ada), actor: bea)
        try await execute(
            .send(
                roomId: "club", messageId: "t1", body: "in a thread", clientMsgId: nil, replyTo: nil, threadRootId: "c1", mentions: [ada]),
            actor: bea)
        try await execute(
            .send(roomId: "club", messageId: "t2", body: "me too", clientMsgId: nil, replyTo: nil, threadRootId: "c1"), actor: ada)
    }
}
