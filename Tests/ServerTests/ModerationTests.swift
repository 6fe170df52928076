import Events
import Foundation
import TestSupport
import Testing

/// Bans, mutes and blocks with real clients: who is told, who is kept out, and what every refusal says.
@Suite("Moderation with real clients")
struct ModerationTests {
    typealias Room = ReactionsAndPinsTests.Room

    @Test func aBannedUserIsToldRemovedKeptOutUntilUnbannedAndSeesNothingMeanwhile() async throws {
        let r = try await Room.make("ban")
        let ban = try await r.s.request("POST", "/v1/rooms/\(r.id)/bans/\(r.cat.id)", token: r.ann.token, body: ["reason": "spam"])
        #expect(ban.status == 200 && ban["ban", "state"] as? String == "banned")
        for ws in [r.bobWS, r.catWS] {
            let frame = try await r.event(ws, "member.banned")
            #expect(frame["event", "data", "userId"] as? String == r.cat.id && frame["event", "data", "reason"] as? String == "spam")
            #expect(frame["event", "data", "previousState"] as? String == "joined")
        }
        // The room goes on without cat: the next thing cat's socket gets of it is the unban, not ann's message.
        _ = try await r.send(r.ann, "without cat")
        #expect(try await r.event(r.bobWS, "message.sent")["event", "data", "body"] as? String == "without cat")
        #expect(try await r.s.request("GET", "/v1/rooms/\(r.id)/messages", token: r.cat.token).error == "not_a_member")
        let join = try await r.s.request("POST", "/v1/rooms/\(r.id)/join", token: r.cat.token)
        #expect(join.status == 403 && join.error == "forbidden")
        let invite = try await r.s.request("POST", "/v1/rooms/\(r.id)/invites", token: r.ann.token, body: ["userId": r.cat.id])
        #expect(invite.status == 403 && invite.error == "forbidden")
        // A member cannot ban, nor see the bans; nobody bans the owner.
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/bans/\(r.ann.id)", token: r.bob.token).error == "forbidden")
        #expect(try await r.s.request("GET", "/v1/rooms/\(r.id)/bans", token: r.bob.token).error == "forbidden")
        let list = try await r.s.until("/v1/rooms/\(r.id)/bans", token: r.ann.token) { ($0["bans"] as? [Any])?.count == 1 }
        let entry = try #require((list["bans"] as? [[String: Any]])?.first)
        #expect(entry["userId"] as? String == r.cat.id && entry["bannedBy"] as? String == r.ann.id && entry["reason"] as? String == "spam")
        // Unbanned, cat can be invited and join again; the invite is the next thing of the room cat's socket gets.
        #expect(try await r.s.request("DELETE", "/v1/rooms/\(r.id)/bans/\(r.cat.id)", token: r.ann.token).status == 200)
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/invites", token: r.ann.token, body: ["userId": r.cat.id]).status == 201)
        let next = try await r.catWS.next(type: "event")
        #expect(next["event", "type"] as? String == "member.invited" && next["event", "data", "userId"] as? String == r.cat.id)
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/join", token: r.cat.token).status == 200)
        _ = try await r.s.until("/v1/rooms/\(r.id)/bans", token: r.ann.token) { ($0["bans"] as? [Any])?.isEmpty == true }
        try await r.close()
    }

    @Test func aMutedMemberReadsButEverySendReactAndPinIsRefusedUntilUnmuted() async throws {
        let r = try await Room.make("mute")
        let message = try await r.send(r.ann, "hello")
        let until = formatTimestamp(Date().addingTimeInterval(3600))
        let mute = try await r.s.request("POST", "/v1/rooms/\(r.id)/mutes/\(r.bob.id)", token: r.ann.token, body: ["until": until])
        #expect(mute.status == 200)
        let frame = try await r.event(r.catWS, "member.muted")
        #expect(frame["event", "data", "userId"] as? String == r.bob.id && frame["event", "data", "until"] as? String == until)
        let send = try await r.s.request("POST", "/v1/rooms/\(r.id)/messages", token: r.bob.token, body: ["body": "let me talk"])
        #expect(send.status == 403 && send.error == "forbidden", "\(send.text)")
        #expect((send["error", "message"] as? String)?.contains("muted") == true)
        // The WebSocket way too: an error frame, and the socket stays open.
        try r.bobWS.send(["type": "send", "roomId": r.id, "body": "over the socket", "clientMsgId": "w1"])
        let error = try await r.bobWS.next(type: "error")
        #expect(error["code"] as? String == "forbidden" && error["ref"] as? String == "w1")
        let react = try await r.s.request(
            "POST", "/v1/rooms/\(r.id)/messages/\(message)/reactions", token: r.bob.token, body: ["emoji": "👍"])
        #expect(react.error == "forbidden")
        #expect(try await r.s.request("GET", "/v1/rooms/\(r.id)/messages", token: r.bob.token).status == 200)  // reading is fine
        let room = try await r.s.until("/v1/rooms/\(r.id)", token: r.cat.token) { result in
            ((result["room", "members"] as? [[String: Any]]) ?? []).contains {
                $0["userId"] as? String == r.bob.id && $0["muted"] as? Bool == true
            }
        }
        let bob = ((room["room", "members"] as? [[String: Any]]) ?? []).first { $0["userId"] as? String == r.bob.id }
        #expect(bob?["mutedUntil"] as? String == until)
        // A member mutes nobody; an admin does not mute the owner.
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/mutes/\(r.ann.id)", token: r.cat.token).error == "forbidden")
        #expect(try await r.s.request("DELETE", "/v1/rooms/\(r.id)/mutes/\(r.bob.id)", token: r.ann.token).status == 200)
        _ = try await r.event(r.catWS, "member.unmuted")
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/messages", token: r.bob.token, body: ["body": "thanks"]).status == 201)
        let past = try await r.s.request(
            "POST", "/v1/rooms/\(r.id)/mutes/\(r.bob.id)", token: r.ann.token, body: ["until": "2020-01-01T00:00:00Z"])
        #expect(past.status == 409 && past.error == "conflict")
        let garbage = try await r.s.request("POST", "/v1/rooms/\(r.id)/mutes/\(r.bob.id)", token: r.ann.token, body: ["until": "soon"])
        #expect(garbage.status == 400)
        try await r.close()
    }

    @Test func aBlockKeepsTheBlockedUserOutOfPrivateMessagesAndInvitesAndOnlyTheBlockerIsTold() async throws {
        let s = try await ServerProcess()
        let dee = try await s.register("blkdee")
        let eve = try await s.register("blkeve")
        let deeWS = WSTestClient(port: s.port, token: dee.token)
        let eveWS = WSTestClient(port: s.port, token: eve.token)
        for ws in [deeWS, eveWS] { _ = try await ws.next(type: "hello") }
        let first = try await s.request("POST", "/v1/users/\(dee.id)/messages", token: eve.token, body: ["body": "hi dee"])
        #expect(first.status == 201)
        let direct = try #require(first["room", "id"] as? String)
        #expect(try await s.request("PUT", "/v1/me/blocks/\(eve.id)", token: dee.token).status == 200)
        #expect(try await s.request("PUT", "/v1/me/blocks/\(eve.id)", token: dee.token).status == 200)  // again: nothing more
        var blocked: [String: Any] = [:]
        repeat { blocked = try await deeWS.next(type: "event") } while blocked["event", "type"] as? String != "user.blocked"
        #expect(blocked["event", "data", "userId"] as? String == eve.id && blocked["event", "actorId"] as? String == dee.id)
        // Eve can neither start nor continue a private chat with dee, by HTTP or WebSocket.
        let again = try await s.request("POST", "/v1/users/\(dee.id)/messages", token: eve.token, body: ["body": "hello?"])
        #expect(again.status == 403 && again.error == "forbidden")
        let inRoom = try await s.request("POST", "/v1/rooms/\(direct)/messages", token: eve.token, body: ["body": "hello??"])
        #expect(inRoom.status == 403 && inRoom.error == "forbidden")
        try eveWS.send(["type": "send", "toUserId": dee.id, "body": "hello???", "clientMsgId": "b1"])
        #expect(try await eveWS.next(type: "error")["code"] as? String == "forbidden")
        // Dee still may write, and eve's socket's next event is that message: she was never sent the block.
        #expect(try await s.request("POST", "/v1/rooms/\(direct)/messages", token: dee.token, body: ["body": "bye"]).status == 201)
        var next: [String: Any] = [:]
        repeat {
            next = try await eveWS.next(type: "event")
        } while next["event", "data", "body"] as? String == "hi dee"
            || next["event", "type"] as? String == "room.created"
        #expect(next["event", "type"] as? String == "message.sent" && next["event", "data", "body"] as? String == "bye")
        // No invite from eve either.
        let group = try await s.request("POST", "/v1/rooms", token: eve.token, body: ["name": "eve's"])
        let groupId = try #require(group["room", "id"] as? String)
        let invite = try await s.request("POST", "/v1/rooms/\(groupId)/invites", token: eve.token, body: ["userId": dee.id])
        #expect(invite.status == 403 && invite.error == "forbidden")
        let withInvite = try await s.request("POST", "/v1/rooms", token: eve.token, body: ["name": "sneaky", "invite": [dee.id]])
        #expect(withInvite.status == 403 && withInvite.error == "forbidden")
        let list = try await s.until("/v1/me/blocks", token: dee.token) { ($0["blocks"] as? [Any])?.count == 1 }
        #expect((list["blocks"] as? [[String: Any]])?.first?["userId"] as? String == eve.id)
        #expect((try await s.request("GET", "/v1/me/blocks", token: eve.token)["blocks"] as? [Any])?.isEmpty == true)
        #expect(try await s.request("PUT", "/v1/me/blocks/\(dee.id)", token: dee.token).error == "conflict")
        #expect(try await s.request("PUT", "/v1/me/blocks/nobody", token: dee.token).error == "not_found")
        // Unblocked: eve writes again.
        #expect(try await s.request("DELETE", "/v1/me/blocks/\(eve.id)", token: dee.token).status == 200)
        #expect(try await s.request("POST", "/v1/users/\(dee.id)/messages", token: eve.token, body: ["body": "friends?"]).status == 201)
        _ = try await s.until("/v1/me/blocks", token: dee.token) { ($0["blocks"] as? [Any])?.isEmpty == true }
        deeWS.close()
        eveWS.close()
        try await s.cleanUp()
    }
}
