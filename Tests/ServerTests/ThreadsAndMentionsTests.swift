import Foundation
import TestSupport
import Testing

/// Threads and mentions with real clients: a reply in a thread reaches every member, the root counts its replies, the
/// thread page lists them, and a mention lights up the mentioned member's room list until they read it.
@Suite("Threads and mentions with real clients")
struct ThreadsAndMentionsTests {
    typealias Room = ReactionsAndPinsTests.Room

    @Test func repliesInAThreadReachEveryMemberAndTheRootCountsThem() async throws {
        let r = try await Room.make("thr")
        let root = try await r.send(r.ann, "where do we eat?")
        let path = "/v1/rooms/\(r.id)/messages"
        var replies: [String] = []
        for (user, text) in [(r.bob, "pizza"), (r.cat, "sushi"), (r.bob, "pizza again")] {
            let sent = try await r.s.request("POST", path, token: user.token, body: ["body": text, "threadRootId": root])
            #expect(sent.status == 201 && sent["message", "threadRootId"] as? String == root)
            replies.append(try #require(sent["message", "id"] as? String))
        }
        // Over the WebSocket too, and every member gets each reply with its thread.
        try r.catWS.send(["type": "send", "roomId": r.id, "body": "or tacos", "clientMsgId": "t1", "threadRootId": root])
        let ack = try await r.catWS.next(type: "ack")
        #expect(ack["message", "threadRootId"] as? String == root && ack["message", "seq"] as? Int == 5)
        for ws in [r.annWS, r.bobWS] {
            var bodies: [String] = []
            while bodies.count < 4 {
                let frame = try await r.event(ws, "message.sent")
                if frame["event", "data", "threadRootId"] as? String == root {
                    bodies.append(frame["event", "data", "body"] as? String ?? "")
                }
            }
            #expect(bodies == ["pizza", "sushi", "pizza again", "or tacos"])
        }
        // The root's counters in history (once all four are projected), then the thread page, oldest first, in pages.
        let history = try await r.s.until(path, token: r.ann.token) { result in
            let rootJSON = (result["messages"] as? [[String: Any]])?.first { $0["id"] as? String == root }
            return (rootJSON?["thread"] as? [String: Any])?["replyCount"] as? Int == 4
        }
        let page = try await r.s.request("GET", "\(path)/\(root)/thread?limit=3", token: r.cat.token)
        let bodies = (page["messages"] as? [[String: Any]])?.compactMap { $0["body"] as? String }
        #expect(bodies == ["pizza", "sushi", "pizza again"] && page["hasMore"] as? Bool == true)
        let rest = try await r.s.request("GET", "\(path)/\(root)/thread?after=4", token: r.cat.token)
        #expect((rest["messages"] as? [[String: Any]])?.compactMap { $0["body"] as? String } == ["or tacos"])
        let rootJSON = try #require((history["messages"] as? [[String: Any]])?.first { $0["id"] as? String == root })
        #expect((rootJSON["thread"] as? [String: Any])?["lastReplySeq"] as? Int == 5)
        #expect((rootJSON["thread"] as? [String: Any])?["lastReplyAt"] is String)
        // A reply is not a root; a message of another room is none either; an outsider reads no thread.
        let nested = try await r.s.request("POST", path, token: r.ann.token, body: ["body": "x", "threadRootId": replies[0]])
        #expect(nested.status == 409 && nested.error == "conflict")
        #expect(try await r.s.request("POST", path, token: r.ann.token, body: ["body": "x", "threadRootId": "nope"]).error == "not_found")
        let eve = try await r.s.register("threve")
        #expect(try await r.s.request("GET", "\(path)/\(root)/thread", token: eve.token).error == "not_a_member")
        #expect(try await r.s.request("GET", "\(path)/nope/thread", token: r.ann.token).error == "not_found")
        try await r.close()
    }

    @Test func aMentionLightsUpTheMentionedMembersRoomListUntilTheyRead() async throws {
        let r = try await Room.make("men")
        let path = "/v1/rooms/\(r.id)/messages"
        let sent = try await r.s.request("POST", path, token: r.ann.token, body: ["body": "@bob look", "mentions": [r.bob.id]])
        #expect(sent.status == 201 && sent["message", "mentions"] as? [String] == [r.bob.id])
        let frame = try await r.event(r.bobWS, "message.sent")
        #expect(frame["event", "data", "mentions"] as? [String] == [r.bob.id])
        _ = try await r.send(r.ann, "no mention")
        _ = try await r.s.request("POST", path, token: r.cat.token, body: ["body": "@bob @ann", "mentions": [r.bob.id, r.ann.id]])
        func mentionCount(_ user: (id: String, token: String), is expected: Int) async throws {
            _ = try await r.s.until("/v1/rooms", token: user.token) { result in
                ((result["rooms"] as? [[String: Any]]) ?? []).first { $0["id"] as? String == r.id }?["mentionCount"] as? Int == expected
            }
        }
        try await mentionCount(r.bob, is: 2)
        try await mentionCount(r.ann, is: 1)  // cat mentioned her after her last message
        try await mentionCount(r.cat, is: 0)
        // Reading up to the first clears one; a deleted message's mention goes with it.
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/read", token: r.bob.token, body: ["seq": 1]).status == 200)
        try await mentionCount(r.bob, is: 1)
        let last = try #require(
            (try await r.s.until(path, token: r.cat.token) { ($0["messages"] as? [Any])?.count == 3 })["messages"] as? [[String: Any]])
        #expect(try await r.s.request("DELETE", "\(path)/\(last[0]["id"] as? String ?? "")", token: r.cat.token).status == 200)
        try await mentionCount(r.bob, is: 0)
        // Only joined members: an outsider or an invitee cannot be mentioned.
        let eve = try await r.s.register("meneve")
        let refused = try await r.s.request("POST", path, token: r.ann.token, body: ["body": "@eve", "mentions": [eve.id]])
        #expect(refused.status == 404 && refused.error == "not_found")
        let tooMany = try await r.s.request("POST", path, token: r.ann.token, body: ["body": "all", "mentions": (0..<51).map { "u\($0)" }])
        #expect(tooMany.status == 400)
        try await r.close()
    }
}
