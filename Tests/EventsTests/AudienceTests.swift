import Foundation
import Testing

@testable import Events

/// Who an event reaches, and a user's membership wound back to an earlier position, with
/// the events the rules themselves decide.
@Suite("Audience: who receives an event")
struct AudienceTests {
    /// alice's room "club": bob joins, carol is only invited; then, while both are offline
    /// (after `since`), m2, bob's removal, m3, carol's removal.
    static func club() throws -> (before: [Event], after: [Event]) {
        var s = Script()
        var before = try s.run("alice", .createGroup(roomId: "club", name: "club", invite: ["bob", "carol"]))
        before += try s.run("bob", .join(roomId: "club"))
        before += try s.run("alice", .send(roomId: "club", messageId: "m1", body: "one", clientMsgId: nil, replyTo: nil))
        var after = try s.run("alice", .send(roomId: "club", messageId: "m2", body: "two", clientMsgId: nil, replyTo: nil))
        after += try s.run("alice", .remove(roomId: "club", userId: "bob"))
        after += try s.run("alice", .send(roomId: "club", messageId: "m3", body: "three", clientMsgId: nil, replyTo: nil))
        after += try s.run("alice", .remove(roomId: "club", userId: "carol"))
        return (before, after)
    }

    static func labels(_ events: [Event], for viewer: inout Viewer) -> [String] {
        events.filter { viewer.receives($0) }.map { event in
            if case .messageSent(let m) = event.data { return m.messageId }
            return event.type.rawValue + (event.data.member.map { ":" + $0.userId } ?? "")
        }
    }

    @Test func aBannedMemberGetsTheBanAndNothingAfterAndABlockReachesOnlyTheBlocker() throws {
        var s = Script()
        var events = try s.run("alice", .createGroup(roomId: "club", name: "club", invite: ["bob"]))
        events += try s.run("bob", .join(roomId: "club"))
        events += try s.run("alice", .mute(roomId: "club", userId: "bob", until: nil))
        events += try s.run("alice", .unmute(roomId: "club", userId: "bob"))
        let since = events.count
        events += try s.run("alice", .ban(roomId: "club", userId: "bob", reason: "spam"))
        events += try s.run("alice", .send(roomId: "club", messageId: "m1", body: "one", clientMsgId: nil, replyTo: nil))
        events += try s.run("alice", .unban(roomId: "club", userId: "bob"))
        events += try s.run("alice", .send(roomId: "club", messageId: "m2", body: "two", clientMsgId: nil, replyTo: nil))
        var bob = Viewer(userId: "bob", rooms: [])
        #expect(
            Self.labels(events, for: &bob) == [
                "member.invited:bob", "member.joined:bob", "member.muted:bob", "member.unmuted:bob", "member.banned:bob",
            ])
        #expect(bob.rooms.isEmpty)
        // Wound back from after the ban to before it: bob was a joined member then (the ban says so).
        let wound = Viewer(userId: "bob", rooms: []).rewound(over: Array(events[since...]))
        #expect(wound.viewer.rooms == ["club"] && wound.unresolved.isEmpty)
        // Someone banned before they ever came is told nothing of the room.
        let early = try s.run("alice", .ban(roomId: "club", userId: "dave", reason: "known spammer"))
        var dave = Viewer(userId: "dave", rooms: [])
        #expect(Self.labels(early, for: &dave).isEmpty)
        let block = try #require(
            try Rules.decide(.block(userId: "bob"), DecisionState(knownUsers: ["bob"]), s.context("alice")).events.first)
        #expect(Audience.recipients(of: block, joinedBefore: ["alice", "bob"]) == ["alice"])
        var alice = Viewer(userId: "alice", rooms: [block.roomId!])
        var bobNow = Viewer(userId: "bob", rooms: [block.roomId!])
        #expect(alice.receives(block) && !bobNow.receives(block))
    }

    @Test func aMemberReceivesTheRoomFromTheirInviteUntilTheirRemoval() throws {
        let (before, after) = try Self.club()
        var bob = Viewer(userId: "bob", rooms: [])
        #expect(Self.labels(before + after, for: &bob) == ["member.invited:bob", "member.joined:bob", "m1", "m2", "member.removed:bob"])
        #expect(bob.rooms.isEmpty)
        var carol = Viewer(userId: "carol", rooms: [])
        #expect(Self.labels(before + after, for: &carol) == ["member.invited:carol", "member.removed:carol"])
        var alice = Viewer(userId: "alice", rooms: [])
        #expect(Self.labels(before + after, for: &alice).filter { $0.hasPrefix("m") && !$0.hasPrefix("member") } == ["m1", "m2", "m3"])
    }

    @Test func aMemberRemovedWhileOfflineIsWoundBackToJoinedAndReplayedWhatCameBeforeTheRemoval() throws {
        let (_, after) = try Self.club()
        let now = Viewer(userId: "bob", rooms: [])
        // The removal records that bob had joined: wound back, he is a member at `since`.
        let back = now.rewound(over: after)
        #expect(back.viewer.rooms == ["club"] && back.unresolved.isEmpty)
        var atSince = back.viewer
        #expect(Self.labels(after, for: &atSince) == ["m2", "member.removed:bob"])
        #expect(atSince == now)
    }

    @Test func aRemovalLoggedWithoutItsPreviousStateIsAskedAboutAndUnknownCountsAsNotJoined() throws {
        let (_, after) = try Self.club()
        let legacy = after.map { event in
            var event = event
            if case .memberRemoved(let m) = event.data { event.data = .memberRemoved(MemberChange(userId: m.userId)) }
            return event
        }
        let now = Viewer(userId: "bob", rooms: [])
        let unsure = now.rewound(over: legacy)
        #expect(unsure.viewer.rooms.isEmpty && unsure.unresolved == ["club"])
        var told = now.rewound(over: legacy) { _ in true }.viewer
        #expect(Self.labels(legacy, for: &told) == ["m2", "member.removed:bob"])
        var unknown = unsure.viewer
        #expect(Self.labels(legacy, for: &unknown) == ["member.removed:bob"])
    }

    @Test func anInviteeRemovedWhileOfflineIsReplayedTheRemovalOnly() throws {
        let (_, after) = try Self.club()
        let back = Viewer(userId: "carol", rooms: []).rewound(over: after)
        #expect(back.unresolved.isEmpty)
        var atSince = back.viewer
        #expect(Self.labels(after, for: &atSince) == ["member.removed:carol"])
    }

    @Test func theEventsThemselvesTellMostMembershipsBeforeAndAfter() throws {
        var s = Script()
        let created = try s.run("alice", .createGroup(roomId: "r", name: "r", invite: ["bob"]))
        let joined = try s.run("bob", .join(roomId: "r"))
        let left = try s.run("bob", .leave(roomId: "r"))
        #expect(Audience.joinedBefore("alice", created[0]) == false && Audience.joinedAfter("alice", created[0]) == true)
        #expect(Audience.joinedBefore("bob", created[1]) == false && Audience.joinedAfter("bob", created[1]) == false)
        #expect(Audience.joinedBefore("bob", joined[0]) == false && Audience.joinedAfter("bob", joined[0]) == true)
        #expect(Audience.joinedBefore("bob", left[0]) == true && Audience.joinedAfter("bob", left[0]) == false)
        #expect(Audience.joinedBefore("carol", joined[0]) == nil)
        // Wound back over a join and a leave: not joined before either.
        let back = Viewer(userId: "bob", rooms: []).rewound(over: joined + left)
        #expect(back.viewer.rooms.isEmpty && back.unresolved.isEmpty)
        // A user event reaches nobody; a room's first events reach the members it starts with.
        let registered = Event(
            id: "e", at: Date(), actorId: "dave",
            data: .userRegistered(.init(userId: "dave", username: "dave", displayName: "Dave", passwordHash: "h")))
        #expect(Audience.recipients(of: registered, joinedBefore: ["dave"]).isEmpty)
        #expect(Audience.recipients(of: created[0], joinedBefore: []) == ["alice"])
        #expect(Audience.recipients(of: created[1], joinedBefore: ["alice"]) == ["alice", "bob"])
    }
}
