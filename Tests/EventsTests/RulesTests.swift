import Foundation
import Testing

@testable import Events

/// Decides commands the way the log does, folding accepted events into the state.
struct Script {
    var rooms: [String: RoomState] = [:]
    var users: Set<String> = ["alice", "bob", "carol", "dave"]
    var counter = Counter()
    let now = Date(timeIntervalSince1970: 1_764_000_000)

    final class Counter: @unchecked Sendable {
        var n = 0
        func next() -> String {
            n += 1
            return "e\(n)"
        }
    }

    func context(_ actor: String, max: Int = 4000) -> DecisionContext {
        let counter = self.counter
        return DecisionContext(actorId: actor, now: now, maxMessageBytes: max) { counter.next() }
    }

    func state(for command: Command, _ actor: String) -> DecisionState {
        DecisionState(room: command.roomId(actor: actor).flatMap { rooms[$0] }, knownUsers: users)
    }

    /// Decides and applies; returns the events.
    @discardableResult
    mutating func run(_ actor: String, _ command: Command, max: Int = 4000) throws(RuleError) -> [Event] {
        let decision = try Rules.decide(command, state(for: command, actor), context(actor, max: max))
        for event in decision.events {
            var event = event
            if case .messageSent = event.data, let id = event.roomId { event.seq = (rooms[id]?.lastSeq ?? 0) + 1 }
            if let id = event.roomId { rooms[id] = Rules.evolve(rooms[id], event) }
        }
        return decision.events
    }

    /// Expects `command` to be refused with `code`, changing nothing.
    mutating func refuse(_ actor: String, _ command: Command, _ code: RuleError.Code, max: Int = 4000) {
        let before = rooms
        do {
            try run(actor, command, max: max)
            Issue.record("\(command) by \(actor) was accepted, expected \(code.rawValue)")
        } catch {
            #expect(error.code == code, "\(command) by \(actor): \(error)")
        }
        #expect(rooms == before)
    }

    /// A group "g" owned by alice with bob joined as member and carol invited.
    static func group() throws -> Script {
        var script = Script()
        try script.run("alice", .createGroup(roomId: "g", name: "Team", invite: ["bob", "carol"]))
        try script.run("bob", .join(roomId: "g"))
        return script
    }
}

@Suite("Rules: decide and evolve without servers")
struct RulesTests {
    @Test func firstPrivateMessageCreatesTheDirectRoomThenReusesIt() throws {
        var s = Script()
        let first = try s.run("alice", .sendDirect(to: "bob", messageId: "m1", body: "hi", clientMsgId: "c1"))
        #expect(first.map(\.type) == [.roomCreated, .messageSent])
        let roomId = Partitioning.directRoomId("alice", "bob")
        #expect(roomId == Partitioning.directRoomId("bob", "alice"))
        #expect(first[0].data == .roomCreated(RoomCreated(kind: .direct, members: ["alice", "bob"])))
        let reply = try s.run("bob", .sendDirect(to: "alice", messageId: "m2", body: "hey", clientMsgId: nil))
        #expect(reply.map(\.type) == [.messageSent])
        #expect(s.rooms[roomId]?.lastSeq == 2)
        #expect(s.rooms[roomId]?.members.count == 2)
    }

    /// PostgreSQL cannot hold U+0000: 69baa50 accepted it, and the metadata projector then
    /// failed on the event, retried, split and parked it, while projection lag grew.
    @Test func textWithNULIsRefusedBeforeAnythingIsAppended() throws {
        var s = Script()
        try s.run("alice", .createGroup(roomId: "r", name: "room", invite: []))
        try s.run("alice", .send(roomId: "r", messageId: "m", body: "fine", clientMsgId: nil, replyTo: nil))
        s.refuse("alice", .send(roomId: "r", messageId: "n", body: "a\u{0}b", clientMsgId: nil, replyTo: nil), .invalidRequest)
        s.refuse("alice", .send(roomId: "r", messageId: "n", body: "ok", clientMsgId: "c\u{0}", replyTo: nil), .invalidRequest)
        s.refuse("alice", .sendDirect(to: "bob", messageId: "n", body: "\u{0}", clientMsgId: nil), .invalidRequest)
        s.refuse("alice", .edit(roomId: "r", messageId: "m", body: "x\u{0}"), .invalidRequest)
        s.refuse("alice", .rename(roomId: "r", name: "n\u{0}ame"), .invalidRequest)
        s.refuse("alice", .createGroup(roomId: "r2", name: "\u{0}", invite: []), .invalidRequest)
        s.refuse("dave", .register(userId: "dave", username: "dave", displayName: "D\u{0}", passwordHash: "h"), .invalidRequest)
        // Every other control, and text from the astral planes, combining marks and RTL, is fine.
        try s.run("alice", .send(roomId: "r", messageId: "o", body: "\u{1}\u{1F}\u{7F} 𝄞 é ש\u{200F}", clientMsgId: nil, replyTo: nil))
    }

    @Test func privateMessageRefusals() {
        var s = Script()
        s.refuse("alice", .sendDirect(to: "alice", messageId: "m", body: "me", clientMsgId: nil), .conflict)
        s.refuse("alice", .sendDirect(to: "nobody", messageId: "m", body: "hi", clientMsgId: nil), .notFound)
        s.refuse("alice", .sendDirect(to: "bob", messageId: "m", body: "  ", clientMsgId: nil), .invalidRequest)
        s.refuse(
            "alice", .sendDirect(to: "bob", messageId: "m", body: String(repeating: "é", count: 6), clientMsgId: nil), .tooLarge, max: 10)
        s.refuse("alice", .sendDirect(to: "bob", messageId: "m", body: "x", clientMsgId: ""), .invalidRequest)
        s.refuse(
            "alice", .sendDirect(to: "bob", messageId: "m", body: "x", clientMsgId: String(repeating: "c", count: 200)), .invalidRequest)
    }

    @Test func groupLifecycle() throws {
        var s = try Script.group()
        var room = try #require(s.rooms["g"])
        #expect(room.members["alice"]?.role == .owner)
        #expect(room.members["bob"]?.state == .joined)
        #expect(room.members["carol"]?.state == .invited)
        try s.run("carol", .decline(roomId: "g"))
        #expect(s.rooms["g"]?.members["carol"]?.state == .declined)
        try s.run("alice", .invite(roomId: "g", userId: "carol"))  // invited again after declining
        try s.run("carol", .join(roomId: "g"))
        try s.run("alice", .setRole(roomId: "g", userId: "bob", role: .admin))
        try s.run("bob", .rename(roomId: "g", name: "  Renamed  "))
        #expect(s.rooms["g"]?.name == "Renamed")
        try s.run("bob", .remove(roomId: "g", userId: "carol"))
        #expect(s.rooms["g"]?.members["carol"]?.state == .removed)
        try s.run("bob", .leave(roomId: "g"))
        room = try #require(s.rooms["g"])
        #expect(room.members["bob"]?.state == .left)
        #expect(room.version == 10)
    }

    @Test func ownerLeavingHandsOwnershipToTheLongestStandingAdminElseMember() throws {
        var s = try Script.group()
        try s.run("carol", .join(roomId: "g"))
        try s.run("alice", .invite(roomId: "g", userId: "dave"))
        try s.run("dave", .join(roomId: "g"))
        try s.run("alice", .setRole(roomId: "g", userId: "dave", role: .admin))
        let events = try s.run("alice", .leave(roomId: "g"))
        #expect(
            events.map(\.data) == [
                .memberRoleChanged(MemberChange(userId: "dave", role: .owner)), .memberLeft(MemberChange(userId: "alice")),
            ])
        #expect(s.rooms["g"]?.members["dave"]?.role == .owner)
        // With no admin left the longest-standing member (bob joined before carol) inherits.
        let next = try s.run("dave", .leave(roomId: "g"))
        #expect(next.first?.data == .memberRoleChanged(MemberChange(userId: "bob", role: .owner)))
        try s.run("carol", .leave(roomId: "g"))
        let last = try s.run("bob", .leave(roomId: "g"))  // the last member: nobody inherits
        #expect(last.map(\.type) == [.memberLeft])
    }

    @Test func groupRefusals() throws {
        var s = try Script.group()
        s.refuse("alice", .createGroup(roomId: "g2", name: " ", invite: []), .invalidRequest)
        s.refuse("alice", .createGroup(roomId: "g2", name: "x", invite: ["ghost"]), .notFound)
        s.refuse("alice", .createGroup(roomId: "g", name: "again", invite: []), .conflict)
        s.refuse("alice", .rename(roomId: "nope", name: "x"), .notFound)
        s.refuse("dave", .rename(roomId: "g", name: "x"), .notAMember)
        s.refuse("bob", .rename(roomId: "g", name: "x"), .forbidden)
        s.refuse("alice", .rename(roomId: "g", name: String(repeating: "n", count: 101)), .invalidRequest)
        s.refuse("bob", .invite(roomId: "g", userId: "dave"), .forbidden)
        s.refuse("alice", .invite(roomId: "g", userId: "bob"), .conflict)
        s.refuse("alice", .invite(roomId: "g", userId: "carol"), .conflict)
        s.refuse("alice", .invite(roomId: "g", userId: "ghost"), .notFound)
        s.refuse("carol", .send(roomId: "g", messageId: "m", body: "x", clientMsgId: nil, replyTo: nil), .notAMember)
        s.refuse("dave", .join(roomId: "g"), .forbidden)
        s.refuse("bob", .join(roomId: "g"), .conflict)
        s.refuse("bob", .decline(roomId: "g"), .conflict)
        s.refuse("bob", .remove(roomId: "g", userId: "carol"), .forbidden)
        s.refuse("alice", .remove(roomId: "g", userId: "alice"), .conflict)
        s.refuse("alice", .remove(roomId: "g", userId: "dave"), .notFound)
        s.refuse("bob", .setRole(roomId: "g", userId: "bob", role: .admin), .forbidden)
        s.refuse("alice", .setRole(roomId: "g", userId: "bob", role: .owner), .invalidRequest)
        s.refuse("alice", .setRole(roomId: "g", userId: "alice", role: .member), .conflict)
        s.refuse("alice", .setRole(roomId: "g", userId: "carol", role: .admin), .notFound)
        s.refuse("carol", .leave(roomId: "g"), .notAMember)
        try s.run("alice", .setRole(roomId: "g", userId: "bob", role: .admin))
        try s.run("carol", .join(roomId: "g"))
        try s.run("alice", .setRole(roomId: "g", userId: "carol", role: .admin))
        s.refuse("bob", .remove(roomId: "g", userId: "carol"), .forbidden)  // admins cannot remove admins
        s.refuse("bob", .remove(roomId: "g", userId: "alice"), .forbidden)
        #expect(try s.run("alice", .setRole(roomId: "g", userId: "carol", role: .admin)).isEmpty)  // no change, no event
    }

    @Test func directRoomsHaveNoGroupOperations() throws {
        var s = Script()
        try s.run("alice", .sendDirect(to: "bob", messageId: "m1", body: "hi", clientMsgId: nil))
        let d = Partitioning.directRoomId("alice", "bob")
        s.refuse("alice", .invite(roomId: d, userId: "carol"), .forbidden)
        s.refuse("alice", .leave(roomId: d), .forbidden)
        s.refuse("alice", .rename(roomId: d, name: "x"), .forbidden)
        s.refuse("alice", .remove(roomId: d, userId: "bob"), .forbidden)
        s.refuse("carol", .send(roomId: d, messageId: "m", body: "x", clientMsgId: nil, replyTo: nil), .notAMember)
    }

    @Test func reactionsAreOnePerEmojiPerPersonAndNeverOnADeletedMessage() throws {
        var s = try Script.group()
        try s.run("bob", .send(roomId: "g", messageId: "m1", body: "hello", clientMsgId: nil, replyTo: nil))
        let added = try s.run("alice", .react(roomId: "g", messageId: "m1", emoji: "👍"))
        #expect(added.map(\.data) == [.reactionAdded(Reaction(messageId: "m1", emoji: "👍"))])
        #expect(try s.run("alice", .react(roomId: "g", messageId: "m1", emoji: "👍")).isEmpty)  // there already
        try s.run("alice", .react(roomId: "g", messageId: "m1", emoji: "❤️"))
        try s.run("bob", .react(roomId: "g", messageId: "m1", emoji: "👍"))
        #expect(s.rooms["g"]?.reactions[RoomState.reactionKey("m1", "alice")] == ["❤️", "👍"].sorted())
        #expect(try s.run("bob", .unreact(roomId: "g", messageId: "m1", emoji: "🎉")).isEmpty)  // not there
        try s.run("bob", .unreact(roomId: "g", messageId: "m1", emoji: "👍"))
        #expect(s.rooms["g"]?.reactions[RoomState.reactionKey("m1", "bob")] == nil)
        for bad in ["", "a b", "\u{0}", String(repeating: "x", count: 33), "\n", "\t"] {
            s.refuse("bob", .react(roomId: "g", messageId: "m1", emoji: bad), .invalidRequest)
        }
        s.refuse("bob", .react(roomId: "g", messageId: "nope", emoji: "👍"), .notFound)
        s.refuse("carol", .react(roomId: "g", messageId: "m1", emoji: "👍"), .notAMember)  // only invited
        s.refuse("dave", .react(roomId: "g", messageId: "m1", emoji: "👍"), .notAMember)
        // At most 20 different ones per person and message.
        for i in 0..<18 { try s.run("alice", .react(roomId: "g", messageId: "m1", emoji: "e\(i)")) }
        s.refuse("alice", .react(roomId: "g", messageId: "m1", emoji: "one-too-many"), .conflict)
        try s.run("bob", .react(roomId: "g", messageId: "m1", emoji: "one-too-many"))  // bob has his own 20
        try s.run("bob", .delete(roomId: "g", messageId: "m1"))
        s.refuse("alice", .react(roomId: "g", messageId: "m1", emoji: "👍"), .conflict)
        s.refuse("alice", .unreact(roomId: "g", messageId: "m1", emoji: "👍"), .conflict)
        let decision = try Rules.decide(
            .react(roomId: "g", messageId: "m0", emoji: "x"),
            DecisionState(
                room: RoomState(
                    id: "g", kind: .group, members: ["bob": .init(role: .member, state: .joined, since: 2)],
                    messages: ["m0": .init(senderId: "alice", deleted: false)])), s.context("bob"))
        #expect(decision.facts.contains(Fact(.reactions(roomId: "g", messageId: "m0", userId: "bob"), nil)))
        #expect(decision.facts.contains(Fact(.message(roomId: "g", messageId: "m0"), "alice|0")))
    }

    @Test func pinsAreForOwnersAndAdminsOfGroupsAndEitherMemberOfADirectRoom() throws {
        var s = try Script.group()
        try s.run("bob", .send(roomId: "g", messageId: "m1", body: "hello", clientMsgId: nil, replyTo: nil))
        s.refuse("bob", .pin(roomId: "g", messageId: "m1"), .forbidden)  // a member of a group
        s.refuse("dave", .pin(roomId: "g", messageId: "m1"), .notAMember)
        s.refuse("alice", .pin(roomId: "g", messageId: "nope"), .notFound)
        #expect(try s.run("alice", .pin(roomId: "g", messageId: "m1")).map(\.data) == [.messagePinned(MessagePin(messageId: "m1"))])
        #expect(try s.run("alice", .pin(roomId: "g", messageId: "m1")).isEmpty)  // pinned already
        #expect(s.rooms["g"]?.pinCount == 1)
        try s.run("alice", .setRole(roomId: "g", userId: "bob", role: .admin))
        try s.run("bob", .unpin(roomId: "g", messageId: "m1"))  // an admin may
        #expect(try s.run("bob", .unpin(roomId: "g", messageId: "m1")).isEmpty)
        #expect(s.rooms["g"]?.pinCount == 0)
        // At most 50 a room.
        for i in 0..<50 {
            try s.run("bob", .send(roomId: "g", messageId: "p\(i)", body: "x", clientMsgId: nil, replyTo: nil))
            try s.run("alice", .pin(roomId: "g", messageId: "p\(i)"))
        }
        s.refuse("alice", .pin(roomId: "g", messageId: "m1"), .conflict)
        // Deleting a pinned message unpins it in the same decision.
        let deleted = try s.run("bob", .delete(roomId: "g", messageId: "p3"))
        #expect(deleted.map(\.data) == [.messageUnpinned(MessagePin(messageId: "p3")), .messageDeleted(MessageDeleted(messageId: "p3"))])
        #expect(s.rooms["g"]?.pinCount == 49)
        s.refuse("alice", .pin(roomId: "g", messageId: "p3"), .conflict)  // deleted
        try s.run("alice", .pin(roomId: "g", messageId: "m1"))  // room for one again
        // A direct room: either member.
        try s.run("carol", .sendDirect(to: "dave", messageId: "d1", body: "hi", clientMsgId: nil))
        let direct = Partitioning.directRoomId("carol", "dave")
        try s.run("dave", .pin(roomId: direct, messageId: "d1"))
        try s.run("carol", .unpin(roomId: direct, messageId: "d1"))
    }

    @Test func bansRemoveAndKeepOutUntilUnbannedAndFollowRank() throws {
        var s = try Script.group()  // alice owner, bob member, carol invited
        try s.run("alice", .setRole(roomId: "g", userId: "bob", role: .admin))
        s.refuse("bob", .ban(roomId: "g", userId: "alice", reason: nil), .forbidden)  // nobody over the owner
        s.refuse("alice", .ban(roomId: "g", userId: "alice", reason: nil), .conflict)
        s.refuse("alice", .ban(roomId: "g", userId: "nobody", reason: nil), .notFound)
        s.refuse("alice", .ban(roomId: "g", userId: "carol", reason: String(repeating: "x", count: 501)), .invalidRequest)
        let banned = try s.run("bob", .ban(roomId: "g", userId: "carol", reason: "  spam  "))  // an admin over an invitee
        #expect(banned.map(\.data) == [.memberBanned(MemberChange(userId: "carol", previousState: .invited, reason: "spam"))])
        #expect(s.rooms["g"]?.members["carol"]?.state == .banned)
        #expect(try s.run("bob", .ban(roomId: "g", userId: "carol", reason: nil)).isEmpty)  // banned already
        s.refuse("carol", .join(roomId: "g"), .forbidden)
        s.refuse("alice", .invite(roomId: "g", userId: "carol"), .forbidden)
        // Someone who was never in the room can be banned before they come.
        try s.run("alice", .ban(roomId: "g", userId: "dave", reason: nil))
        s.refuse("bob", .invite(roomId: "g", userId: "dave"), .forbidden)
        try s.run("alice", .unban(roomId: "g", userId: "carol"))
        #expect(s.rooms["g"]?.members["carol"]?.state == .left)
        #expect(try s.run("alice", .unban(roomId: "g", userId: "carol")).isEmpty)
        try s.run("bob", .invite(roomId: "g", userId: "carol"))
        try s.run("carol", .join(roomId: "g"))
        s.refuse("carol", .ban(roomId: "g", userId: "bob", reason: nil), .forbidden)  // a member bans nobody
        // The owner bans an admin; the ban takes the admin's role too.
        try s.run("alice", .ban(roomId: "g", userId: "bob", reason: nil))
        #expect(s.rooms["g"]?.members["bob"]?.state == .banned && s.rooms["g"]?.members["bob"]?.role == .member)
        s.refuse("bob", .send(roomId: "g", messageId: "m", body: "x", clientMsgId: nil, replyTo: nil), .notAMember)
        // The direct room has none of it.
        try s.run("carol", .sendDirect(to: "dave", messageId: "d1", body: "hi", clientMsgId: nil))
        s.refuse("carol", .ban(roomId: Partitioning.directRoomId("carol", "dave"), userId: "dave", reason: nil), .forbidden)
    }

    @Test func aMutedMemberReadsButDoesNotSendEditReactOrPinUntilTheMuteEnds() throws {
        var s = try Script.group()
        try s.run("bob", .send(roomId: "g", messageId: "m1", body: "hi", clientMsgId: nil, replyTo: nil))
        s.refuse("bob", .mute(roomId: "g", userId: "alice", until: nil), .forbidden)
        s.refuse("alice", .mute(roomId: "g", userId: "bob", until: s.now.addingTimeInterval(-1)), .conflict)
        s.refuse("alice", .mute(roomId: "g", userId: "dave", until: nil), .notFound)
        let soon = s.now.addingTimeInterval(60)
        #expect(
            try s.run("alice", .mute(roomId: "g", userId: "bob", until: soon)).map(\.data) == [
                .memberMuted(MemberChange(userId: "bob", until: soon))
            ])
        #expect(try s.run("alice", .mute(roomId: "g", userId: "bob", until: soon)).isEmpty)
        for command: Command in [
            .send(roomId: "g", messageId: "m2", body: "x", clientMsgId: nil, replyTo: nil), .edit(roomId: "g", messageId: "m1", body: "y"),
            .react(roomId: "g", messageId: "m1", emoji: "👍"),
        ] {
            s.refuse("bob", command, .forbidden)
        }
        try s.run("bob", .markRead(roomId: "g", seq: 1))  // reading is fine
        try s.run("bob", .delete(roomId: "g", messageId: "m1"))  // and taking back one's own message
        // Once `until` has passed, the same record lets them send.
        let counter = s.counter
        let send = Command.send(roomId: "g", messageId: "m3", body: "back", clientMsgId: nil, replyTo: nil)
        let after = try Rules.decide(
            send, s.state(for: send, "bob"), DecisionContext(actorId: "bob", now: soon.addingTimeInterval(1)) { counter.next() })
        #expect(after.events.count == 1)
        // Until unmuted.
        try s.run("alice", .mute(roomId: "g", userId: "bob", until: nil))
        #expect(s.rooms["g"]?.members["bob"]?.mutedUntil == .max)
        try s.run("alice", .unmute(roomId: "g", userId: "bob"))
        try s.run("bob", .send(roomId: "g", messageId: "m4", body: "ok", clientMsgId: nil, replyTo: nil))
        #expect(try s.run("alice", .unmute(roomId: "g", userId: "bob")).isEmpty)
        // The mute is in the member record the append checks.
        let record = RoomState.Member(role: .member, state: .joined, since: 2, mutedUntil: 1_764_000_060_000)
        #expect(record.encoded == "member:joined:2:1764000060000" && RoomState.Member(encoded: record.encoded) == record)
        #expect(RoomState.Member(encoded: "member:joined:2") == RoomState.Member(role: .member, state: .joined, since: 2))
    }

    @Test func aBlockStopsPrivateMessagesAndInvitesFromTheBlockedUserOnly() throws {
        var s = try Script.group()
        try s.run("bob", .sendDirect(to: "dave", messageId: "d1", body: "hi", clientMsgId: nil))
        let direct = Partitioning.directRoomId("bob", "dave")
        let block = try Rules.decide(.block(userId: "bob"), DecisionState(knownUsers: ["bob"]), s.context("dave"))
        #expect(block.events.map(\.data) == [.userBlocked(UserBlock(userId: "bob"))] && block.events.first?.roomId == direct)
        #expect(block.facts == [Fact(.block(roomId: direct, userId: "dave"), nil)])
        var state = s.state(for: .sendDirect(to: "dave", messageId: "d2", body: "x", clientMsgId: nil), "bob")
        state.blockers = ["dave"]
        #expect(throws: RuleError.self) {
            try Rules.decide(.sendDirect(to: "dave", messageId: "d2", body: "x", clientMsgId: nil), state, s.context("bob"))
        }
        #expect(throws: RuleError.self) {
            try Rules.decide(.send(roomId: direct, messageId: "d2", body: "x", clientMsgId: nil, replyTo: nil), state, s.context("bob"))
        }
        // The blocker may still write: only the blocked user is kept out.
        let reply = try Rules.decide(
            .send(roomId: direct, messageId: "d3", body: "go away", clientMsgId: nil, replyTo: nil), state, s.context("dave"))
        #expect(reply.events.count == 1 && reply.facts.contains(Fact(.block(roomId: direct, userId: "bob"), nil)))
        var invite = s.state(for: .invite(roomId: "g", userId: "dave"), "alice")
        invite.blockers = ["dave"]
        #expect(throws: RuleError(.forbidden, "dave does not take invites from you")) {
            try Rules.decide(.invite(roomId: "g", userId: "dave"), invite, s.context("alice"))
        }
        #expect(
            try Rules.decide(.block(userId: "bob"), DecisionState(knownUsers: ["bob"], blockers: ["dave"]), s.context("dave")).events
                .isEmpty)
        #expect(throws: RuleError(.forbidden, "dave does not take invites from you")) {
            try Rules.decide(
                .createGroup(roomId: "g2", name: "n", invite: ["dave", "carol"]),
                DecisionState(knownUsers: ["dave", "carol"], blockers: ["dave"]), s.context("bob"))
        }
        let unblock = try Rules.decide(.unblock(userId: "bob"), DecisionState(knownUsers: ["bob"], blockers: ["dave"]), s.context("dave"))
        #expect(unblock.events.map(\.data) == [.userUnblocked(UserBlock(userId: "bob"))])
        #expect(throws: RuleError.self) { try Rules.decide(.block(userId: "dave"), DecisionState(knownUsers: ["dave"]), s.context("dave")) }
        #expect(throws: RuleError.self) { try Rules.decide(.block(userId: "zed"), DecisionState(), s.context("dave")) }
    }

    @Test func threadsHangOffARootOfTheRoomAndMentionsNameJoinedMembers() throws {
        var s = try Script.group()  // alice owner, bob joined, carol invited
        try s.run("bob", .send(roomId: "g", messageId: "root", body: "plan?", clientMsgId: nil, replyTo: nil))
        let reply = try s.run(
            "alice",
            .send(
                roomId: "g", messageId: "r1", body: "yes", clientMsgId: nil, replyTo: nil, threadRootId: "root", mentions: ["bob", "bob"]))
        #expect(reply.first?.data == .messageSent(MessageSent(messageId: "r1", body: "yes", threadRootId: "root", mentions: ["bob"])))
        #expect(s.rooms["g"]?.messages["r1"]?.inThread == true && s.rooms["g"]?.messages["r1"]?.encoded == "alice|0|t")
        #expect(RoomState.MessageRecord(encoded: "alice|1|t") == RoomState.MessageRecord(senderId: "alice", deleted: true, inThread: true))
        // A reply in a thread is not a root; nor is a message of no room or a deleted one.
        s.refuse(
            "bob", .send(roomId: "g", messageId: "x", body: "x", clientMsgId: nil, replyTo: nil, threadRootId: "r1"), .conflict)
        s.refuse("bob", .send(roomId: "g", messageId: "x", body: "x", clientMsgId: nil, replyTo: nil, threadRootId: "nope"), .notFound)
        // Mentions: joined members only (carol is only invited), at most 50.
        s.refuse(
            "bob", .send(roomId: "g", messageId: "x", body: "x", clientMsgId: nil, replyTo: nil, mentions: ["carol"]), .notFound)
        s.refuse(
            "bob", .send(roomId: "g", messageId: "x", body: "x", clientMsgId: nil, replyTo: nil, mentions: ["nobody"]), .notFound)
        s.refuse(
            "bob",
            .send(roomId: "g", messageId: "x", body: "x", clientMsgId: nil, replyTo: nil, mentions: (0..<51).map { "u\($0)" }),
            .invalidRequest)
        let decision = try Rules.decide(
            .send(roomId: "g", messageId: "m", body: "hi @alice", clientMsgId: nil, replyTo: nil, mentions: ["alice"]),
            s.state(for: .send(roomId: "g", messageId: "m", body: "", clientMsgId: nil, replyTo: nil), "bob"), s.context("bob"))
        #expect(decision.facts.contains(Fact(.member(roomId: "g", userId: "alice"), s.rooms["g"]?.members["alice"]?.encoded)))
        try s.run("alice", .delete(roomId: "g", messageId: "root"))
        s.refuse("bob", .send(roomId: "g", messageId: "x", body: "x", clientMsgId: nil, replyTo: nil, threadRootId: "root"), .conflict)
    }

    @Test func messagesEditDeleteReplyAndReadReceipts() throws {
        var s = try Script.group()
        try s.run("bob", .send(roomId: "g", messageId: "m1", body: "hello", clientMsgId: "c1", replyTo: nil))
        let reply = try s.run("alice", .send(roomId: "g", messageId: "m2", body: "re", clientMsgId: nil, replyTo: "m1"))
        #expect(reply.first?.data == .messageSent(MessageSent(messageId: "m2", body: "re", replyTo: "m1")))
        try s.run("bob", .edit(roomId: "g", messageId: "m1", body: "hello!"))
        s.refuse("alice", .edit(roomId: "g", messageId: "m1", body: "hijack"), .forbidden)
        s.refuse("bob", .edit(roomId: "g", messageId: "nope", body: "x"), .notFound)
        s.refuse("bob", .edit(roomId: "g", messageId: "m1", body: ""), .invalidRequest)
        s.refuse("bob", .edit(roomId: "g", messageId: "m1", body: "toolong"), .tooLarge, max: 3)
        s.refuse("bob", .delete(roomId: "g", messageId: "m2"), .forbidden)  // a member cannot delete others'
        s.refuse("bob", .send(roomId: "g", messageId: "m3", body: "x", clientMsgId: nil, replyTo: "nope"), .notFound)
        try s.run("alice", .delete(roomId: "g", messageId: "m1"))  // the owner can
        #expect(s.rooms["g"]?.messages["m1"]?.deleted == true)
        #expect(try s.run("bob", .delete(roomId: "g", messageId: "m1")).isEmpty)  // twice: nothing more
        s.refuse("bob", .edit(roomId: "g", messageId: "m1", body: "back"), .conflict)
        try s.run("bob", .markRead(roomId: "g", seq: 2))
        s.refuse("bob", .markRead(roomId: "g", seq: 3), .conflict)
        s.refuse("bob", .markRead(roomId: "g", seq: -1), .invalidRequest)
        s.refuse("carol", .markRead(roomId: "g", seq: 1), .notAMember)
        s.refuse("dave", .delete(roomId: "g", messageId: "m2"), .notAMember)
    }

    @Test func registrationChecksUsernames() throws {
        let context = DecisionContext(actorId: "", now: Date(), newID: { "e" })
        let decision = try Rules.decide(
            .register(userId: "u1", username: "Alice", displayName: nil, passwordHash: "h"), DecisionState(), context)
        #expect(
            decision.events.first?.data
                == .userRegistered(UserRegistered(userId: "u1", username: "alice", displayName: "Alice", passwordHash: "h")))
        #expect(decision.facts == [Fact(.username("alice"), nil)])
        for (name, code) in [("al", RuleError.Code.invalidRequest), ("has space", .invalidRequest), ("ünï", .invalidRequest)] {
            #expect(throws: RuleError(code, "a username is 3 to 32 characters of a-z, 0-9, _ . -")) {
                try Rules.decide(.register(userId: "u", username: name, displayName: nil, passwordHash: "h"), DecisionState(), context)
            }
        }
        #expect(throws: RuleError.self) {
            try Rules.decide(
                .register(userId: "u", username: "alice", displayName: nil, passwordHash: "h"), DecisionState(usernameTaken: true), context)
        }
    }

    @Test func decisionsListTheFactsTheyRelyOn() throws {
        let s = try Script.group()
        let send = try Rules.decide(
            .send(roomId: "g", messageId: "m", body: "x", clientMsgId: "c", replyTo: nil), s.state(for: .join(roomId: "g"), "bob"),
            s.context("bob"))
        #expect(send.facts == [Fact(.member(roomId: "g", userId: "bob"), "member:joined:4")])
        #expect(send.clientMessageKey == ClientMessageKey(roomId: "g", userId: "bob", clientMsgId: "c"))
        let leave = try Rules.decide(.leave(roomId: "g"), s.state(for: .leave(roomId: "g"), "alice"), s.context("alice"))
        #expect(leave.facts.contains(Fact(.room(roomId: "g", field: "ver"), "4")))
    }
}
