import Foundation
import TestSupport
import Testing

@Suite("WebSocket hub with real clients")
struct WebSocketTests {
    @Test func aFirstPrivateMessageReachesTheOtherUserAndSendsAreAcked() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("wsann")
        let bob = try await s.register("wsbob")
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        let hello = try await bobWS.next()
        #expect(hello["type"] as? String == "hello" && hello["userId"] as? String == bob.id && hello["recovered"] as? Bool == true)
        let annWS = WSTestClient(port: s.port, token: ann.token)
        _ = try await annWS.next(type: "hello")
        try annWS.send(["type": "send", "toUserId": bob.id, "body": "hi bob", "clientMsgId": "m1"])
        let ack = try await annWS.next(type: "ack")
        #expect(ack["ref"] as? String == "m1" && ack["message", "seq"] as? Int == 1)
        // Bob gets the room's creation and the message, once, in order.
        let created = try await bobWS.next(type: "event")
        #expect(created["event", "type"] as? String == "room.created")
        let message = try await bobWS.next(type: "event")
        #expect(message["event", "type"] as? String == "message.sent" && message["event", "data", "body"] as? String == "hi bob")
        // The same clientMsgId again: acked with the first message, nothing new appended.
        try annWS.send(["type": "send", "toUserId": bob.id, "body": "hi bob", "clientMsgId": "m1"])
        let again = try await annWS.next(type: "ack")
        #expect(again["message", "id"] as? String == ack["message", "id"] as? String)
        try annWS.send(["type": "ping"])
        #expect(try await annWS.next(type: "pong")["type"] as? String == "pong")
        // Typing reaches the other member and is never logged.
        let roomId = try #require(ack["message", "roomId"] as? String)
        try annWS.send(["type": "typing", "roomId": roomId])
        let typing = try await bobWS.next(type: "typing")
        #expect(typing["userId"] as? String == ann.id)
        try bobWS.send(["type": "send", "roomId": roomId, "body": "hey"])
        let reply = try await annWS.next(type: "event")
        #expect(reply["event", "data", "body"] as? String == "hey" && reply["event", "seq"] as? Int == 2)
        annWS.close()
        bobWS.close()
        try await s.cleanUp()
    }

    @Test func badFramesGetErrorFramesAndTheConnectionStaysOpen() async throws {
        let s = try await ServerProcess()
        let user = try await s.register("wsbad")
        let ws = WSTestClient(port: s.port, token: user.token)
        _ = try await ws.next(type: "hello")
        let cases: [(String, String)] = [
            ("{not json", "invalid_json"), ("[1,2]", "invalid_json"), (#"{"type":"explode"}"#, "invalid_request"),
            (#"{"type":5}"#, "invalid_request"), (#"{"type":"send","roomId":"nope","body":"x","clientMsgId":"r1"}"#, "not_found"),
            (#"{"type":"send","body":"x"}"#, "invalid_request"), (#"{"type":"typing","roomId":"nope"}"#, "not_a_member"),
            (#"{"type":"read","roomId":"nope"}"#, "invalid_request"),
        ]
        for (text, code) in cases {
            ws.sendRaw(text)
            let error = try await ws.next(type: "error")
            #expect(error["code"] as? String == code, "\(text) → \(error)")
        }
        try ws.send(["type": "ping"])
        #expect(try await ws.next(type: "pong")["type"] as? String == "pong")
        ws.close()
        try await s.cleanUp()
    }

    @Test func reconnectingWithSinceAfterMissingAHundredEventsReplaysThemWithoutGapOrDuplicate() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("wsreplaya")
        let bob = try await s.register("wsreplayb")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "replay", "invite": [bob.id]])
        let roomId = try #require(created["room", "id"] as? String)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: bob.token).status == 200)
        let first = WSTestClient(port: s.port, token: bob.token)
        _ = try await first.next(type: "hello")
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "before"]).status == 201)
        let seen = try await first.next(type: "event")
        let position = try #require(seen["position"] as? String)
        first.close()
        for n in 1...100 {
            #expect(
                try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "missed \(n)"]).status == 201)
        }
        let again = WSTestClient(port: s.port, token: bob.token, since: position)
        let hello = try await again.next(type: "hello")
        #expect(hello["recovered"] as? Bool == true)
        // Messages keep coming while it replays: the seam must hold.
        let live = Task {
            for n in 1...20 {
                _ = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "live \(n)"])
            }
        }
        var seqs: [Int] = []
        while seqs.count < 120 {
            let frame = try await again.next(type: "event")
            if let seq = frame["event", "seq"] as? Int { seqs.append(seq) }
        }
        try await live.value
        #expect(seqs == Array(2...121))
        again.close()
        let bad = WSTestClient(port: s.port, token: bob.token, since: "not-a-position")
        #expect(try await bad.next(type: "hello")["recovered"] as? Bool == false)
        bad.close()
        try await s.cleanUp()
    }

    @Test func aRemovedMemberGetsTheRemovalAndNothingMore() async throws {
        let s = try await ServerProcess()
        let owner = try await s.register("wsowner")
        let eve = try await s.register("wseve")
        let carl = try await s.register("wscarl")
        let created = try await s.request("POST", "/v1/rooms", token: owner.token, body: ["name": "private", "invite": [eve.id, carl.id]])
        let roomId = try #require(created["room", "id"] as? String)
        let eveWS = WSTestClient(port: s.port, token: eve.token)
        _ = try await eveWS.next(type: "hello")
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: eve.token).status == 200)
        #expect(try await eveWS.next(type: "event")["event", "type"] as? String == "member.joined")
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: carl.token).status == 200)
        #expect(try await eveWS.next(type: "event")["event", "data", "userId"] as? String == carl.id)
        #expect(try await s.request("DELETE", "/v1/rooms/\(roomId)/members/\(eve.id)", token: owner.token).status == 200)
        let removal = try await eveWS.next(type: "event")
        #expect(removal["event", "type"] as? String == "member.removed" && removal["event", "data", "userId"] as? String == eve.id)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: owner.token, body: ["body": "secret"]).status == 201)
        // A later event of another room Eve is in proves the hub moved past the secret.
        let other = try await s.request("POST", "/v1/users/\(eve.id)/messages", token: carl.token, body: ["body": "psst"])
        #expect(other.status == 201)
        while true {
            let next = try await eveWS.next(type: "event")
            #expect(next["event", "roomId"] as? String != roomId, "after removal Eve got \(next)")
            if next["event", "data", "body"] as? String == "psst" { break }
        }
        eveWS.close()
        try await s.cleanUp()
    }

    @Test func twoServerInstancesBehaveAsOne() async throws {
        let s = try await ServerProcess()
        let t = try await ServerProcess(sharing: s)
        let ann = try await s.register("wstwoa")
        let bob = try await s.register("wstwob")
        let bobWS = WSTestClient(port: t.port, token: bob.token)  // Bob on the second instance
        _ = try await bobWS.next(type: "hello")
        let annWS = WSTestClient(port: s.port, token: ann.token)
        _ = try await annWS.next(type: "hello")
        try annWS.send(["type": "send", "toUserId": bob.id, "body": "across instances", "clientMsgId": "x"])
        _ = try await annWS.next(type: "ack")
        _ = try await bobWS.next(type: "event")  // room.created
        #expect(try await bobWS.next(type: "event")["event", "data", "body"] as? String == "across instances")
        let roomId = try #require(
            try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "2"])["room", "id"] as? String)
        _ = try await bobWS.next(type: "event")
        try bobWS.send(["type": "typing", "roomId": roomId])
        #expect(try await annWS.next(type: "typing")["userId"] as? String == bob.id)
        annWS.close()
        bobWS.close()
        await t.stop()
        try await s.cleanUp()
    }
}
