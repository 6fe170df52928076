import Foundation
import TestSupport
import Testing

/// What a client that reconnects with `since` is replayed: exactly what it would have
/// received had it stayed connected, whatever happened to its memberships meanwhile.
@Suite("WebSocket replay after since: membership as it was")
struct ReplayVisibilityTests {
    @Test func aMemberRemovedWhileOfflineIsReplayedWhatWasSentBeforeTheRemovalAndNothingAfter() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("rvann")
        let eve = try await s.register("rveve")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "club", "invite": [eve.id]])
        let roomId = try #require(created["room", "id"] as? String)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: eve.token).status == 200)
        let first = WSTestClient(port: s.port, token: eve.token)
        _ = try await first.next(type: "hello")
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "seen live"]).status == 201)
        let seen = try await first.next(type: "event")
        let position = try #require(seen["position"] as? String)
        first.close()
        // Eve is offline: two messages she may read, then her removal, then one she may not.
        for body in ["missed 1", "missed 2"] {
            #expect(try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": body]).status == 201)
        }
        #expect(try await s.request("DELETE", "/v1/rooms/\(roomId)/members/\(eve.id)", token: ann.token).status == 200)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "secret"]).status == 201)
        // A later event in a room Eve is still in marks the end of what she can be sent.
        #expect(try await s.request("POST", "/v1/users/\(eve.id)/messages", token: ann.token, body: ["body": "marker"]).status == 201)

        let again = WSTestClient(port: s.port, token: eve.token, since: position)
        let hello = try await again.next(type: "hello")
        #expect(hello["recovered"] as? Bool == true)
        var got: [String] = []
        while true {
            let event = try await again.next(type: "event")
            let type = event["event", "type"] as? String ?? "?"
            let label = (event["event", "data", "body"] as? String) ?? type
            got.append(label)
            if label == "marker" { break }
        }
        #expect(got == ["missed 1", "missed 2", "member.removed", "room.created", "marker"])
        again.close()
        try await s.cleanUp()
    }

    @Test func anInviteeRemovedWhileOfflineIsReplayedTheRemovalOnly() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("rvowner")
        let ivy = try await s.register("rvivy")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "club"])
        let roomId = try #require(created["room", "id"] as? String)
        let first = WSTestClient(port: s.port, token: ivy.token)
        _ = try await first.next(type: "hello")
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/invites", token: ann.token, body: ["userId": ivy.id]).status == 201)
        let invite = try await first.next(type: "event")
        #expect(invite["event", "type"] as? String == "member.invited")
        let position = try #require(invite["position"] as? String)
        first.close()
        // Ivy never joined: what is said in the room is not hers to read, before or after.
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "members only"]).status == 201)
        #expect(try await s.request("DELETE", "/v1/rooms/\(roomId)/members/\(ivy.id)", token: ann.token).status == 200)
        #expect(try await s.request("POST", "/v1/users/\(ivy.id)/messages", token: ann.token, body: ["body": "marker"]).status == 201)

        let again = WSTestClient(port: s.port, token: ivy.token, since: position)
        #expect(try await again.next(type: "hello")["recovered"] as? Bool == true)
        var got: [String] = []
        while true {
            let event = try await again.next(type: "event")
            let label = (event["event", "data", "body"] as? String) ?? (event["event", "type"] as? String ?? "?")
            got.append(label)
            if label == "marker" { break }
        }
        #expect(got == ["member.removed", "room.created", "marker"])
        again.close()
        try await s.cleanUp()
    }
}
