import Crypto
import Foundation
import TestSupport
import Testing

/// The HTTP API as two or three clients use it, against a real server process.
@Suite("HTTP API flows")
struct HTTPAPITests {
    @Test func accountsRegisterLoginAndMe() async throws {
        let s = try await ServerProcess()
        let (id, token) = try await s.register("Hannah")
        let me = try await s.until("/v1/me", token: token) { $0.status == 200 }
        #expect(me["user", "username"] as? String == "hannah")
        #expect(me["user", "passwordHash"] == nil)
        #expect(
            try await s.request("POST", "/v1/auth/register", body: ["username": "HANNAH", "password": "another password"]).error
                == "username_taken")
        #expect(
            try await s.request("POST", "/v1/auth/register", body: ["username": "shorty", "password": "short"]).error == "invalid_request")
        #expect(
            try await s.request("POST", "/v1/auth/register", body: ["username": "a b", "password": "long enough password"]).status == 400)
        let login = try await s.request("POST", "/v1/auth/login", body: ["username": "hannah", "password": "long enough password"])
        #expect(login.status == 200 && login["user", "id"] as? String == id)
        let wrong = try await s.request("POST", "/v1/auth/login", body: ["username": "hannah", "password": "not the password"])
        #expect(wrong.status == 401 && wrong.error == "unauthorized")
        #expect(try await s.request("POST", "/v1/auth/login", body: ["username": "nobody", "password": "whatever pass"]).status == 401)
        #expect(try await s.request("GET", "/v1/users?username=HANNAH", token: token)["user", "id"] as? String == id)
        #expect(try await s.request("GET", "/v1/users/nope", token: token).error == "not_found")
        try await s.cleanUp()
    }

    @Test func forgedExpiredUnsignedAndUnknownUserTokensAreRefused() async throws {
        let s = try await ServerProcess()
        let (id, _) = try await s.register("tokenuser")
        // A token we make ourselves with the server's secret works: the check is real.
        #expect(
            try await s.request("GET", "/v1/rooms", token: jwt(sub: id, exp: Date().addingTimeInterval(600), secret: ServerProcess.secret))
                .status == 200)
        let refused = [
            jwt(sub: id, exp: Date().addingTimeInterval(600), secret: String(repeating: "x", count: 48)),  // forged
            jwt(sub: id, exp: Date().addingTimeInterval(-600), secret: ServerProcess.secret),  // expired
            jwt(sub: id, exp: Date().addingTimeInterval(600), secret: nil, alg: "none"),  // alg: none
            jwt(sub: "no-such-user", exp: Date().addingTimeInterval(600), secret: ServerProcess.secret),  // unknown user
            "not.a.jwt", "",
        ]
        for token in refused {
            let result = try await s.request("GET", "/v1/rooms", token: token)
            #expect(result.status == 401 && result.error == "unauthorized", "\(token)")
        }
        #expect(try await s.request("GET", "/v1/me").status == 401)
        try await s.cleanUp()
    }

    @Test func privateMessagesCreateTheRoomOnceAndCountUnread() async throws {
        let s = try await ServerProcess()
        let alice = try await s.register("alice")
        let bob = try await s.register("bob")
        let first = try await s.request(
            "POST", "/v1/users/\(bob.id)/messages", token: alice.token, body: ["body": "hi bob", "clientMsgId": "c1"])
        #expect(first.status == 201)
        let roomId = try #require(first["room", "id"] as? String)
        #expect(first["message", "seq"] as? Int == 1 && first["room", "kind"] as? String == "direct")
        let again = try await s.request(
            "POST", "/v1/users/\(bob.id)/messages", token: alice.token, body: ["body": "hi bob", "clientMsgId": "c1"])
        #expect(again.status == 200 && again["message", "id"] as? String == first["message", "id"] as? String)
        let reply = try await s.request("POST", "/v1/users/\(alice.id)/messages", token: bob.token, body: ["body": "hi alice"])
        #expect(reply.status == 201 && reply["room", "id"] as? String == roomId && reply["message", "seq"] as? Int == 2)
        // Alice has read her own message, not Bob's; after a read receipt, nothing is unread.
        let rooms = try await s.until("/v1/rooms", token: alice.token) {
            (($0.json["rooms"] as? [[String: Any]])?.first?["lastSeq"] as? Int) == 2
        }
        #expect((rooms.json["rooms"] as? [[String: Any]])?.first?["unreadCount"] as? Int == 1)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/read", token: alice.token, body: ["seq": 2]).status == 200)
        _ = try await s.until("/v1/rooms", token: alice.token) {
            (($0.json["rooms"] as? [[String: Any]])?.first?["unreadCount"] as? Int) == 0
        }
        let history = try await s.until("/v1/rooms/\(roomId)/messages", token: bob.token) { ($0.json["messages"] as? [Any])?.count == 2 }
        #expect((history.json["messages"] as? [[String: Any]])?.map { $0["body"] as? String } == ["hi alice", "hi bob"])
        let carol = try await s.register("carol")
        #expect(try await s.request("GET", "/v1/rooms/\(roomId)/messages", token: carol.token).error == "not_a_member")
        #expect(try await s.request("POST", "/v1/users/nobody/messages", token: alice.token, body: ["body": "x"]).error == "not_found")
        try await s.cleanUp()
    }

    @Test func groupLifecycleWithThreeUsers() async throws {
        let s = try await ServerProcess()
        let owner = try await s.register("owner")
        let ann = try await s.register("ann")
        let ben = try await s.register("ben")
        let created = try await s.request("POST", "/v1/rooms", token: owner.token, body: ["name": "Team", "invite": [ann.id]])
        #expect(created.status == 201)
        let roomId = try #require(created["room", "id"] as? String)
        #expect(try await s.until("/v1/invites", token: ann.token) { ($0.json["invites"] as? [Any])?.count == 1 }.status == 200)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: ann.token).status == 200)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/invites", token: owner.token, body: ["userId": ben.id]).status == 201)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/invites", token: ann.token, body: ["userId": ben.id]).error == "forbidden")
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: ben.token).status == 200)

        let sent = try await s.request(
            "POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "hello team", "clientMsgId": "a1"])
        let messageId = try #require(sent["message", "id"] as? String)
        #expect(
            try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ben.token, body: ["body": "hi", "replyTo": messageId])[
                "message", "replyTo"] as? String == messageId)
        #expect(
            try await s.request("PATCH", "/v1/rooms/\(roomId)/messages/\(messageId)", token: ben.token, body: ["body": "hijack"]).error
                == "forbidden")
        #expect(
            try await s.request("PATCH", "/v1/rooms/\(roomId)/messages/\(messageId)", token: ann.token, body: ["body": "hello, team"])
                .status == 200)
        #expect(
            try await s.request("PUT", "/v1/rooms/\(roomId)/members/\(ann.id)/role", token: owner.token, body: ["role": "admin"]).status
                == 200)
        #expect(
            try await s.request("PUT", "/v1/rooms/\(roomId)/members/\(ann.id)/role", token: owner.token, body: ["role": "emperor"]).error
                == "invalid_request")
        #expect(try await s.request("PATCH", "/v1/rooms/\(roomId)", token: ann.token, body: ["name": "Team 2"]).status == 200)
        let benMessage = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ben.token, body: ["body": "oops"])
        let oops = try #require(benMessage["message", "id"] as? String)
        #expect(try await s.request("DELETE", "/v1/rooms/\(roomId)/messages/\(oops)", token: ann.token).status == 200)  // admin deletes

        let room = try await s.until("/v1/rooms/\(roomId)", token: owner.token) { $0["room", "name"] as? String == "Team 2" }
        #expect((room["room", "members"] as? [[String: Any]])?.count == 3)
        let history = try await s.until("/v1/rooms/\(roomId)/messages?limit=2", token: owner.token) {
            (($0.json["messages"] as? [[String: Any]])?.first?["deleted"] as? Bool) == true
        }
        #expect(history.json["hasMore"] as? Bool == true)
        let all = try await s.until("/v1/rooms/\(roomId)/messages?after=0", token: owner.token) {
            ($0.json["messages"] as? [Any])?.count == 3
        }
        let first = try #require((all.json["messages"] as? [[String: Any]])?.first)
        #expect(first["body"] as? String == "hello, team" && first["editedAt"] is String)
        // A bound past any seq (even past Int64, which the document allows) is no bound.
        let huge = try await s.request("GET", "/v1/rooms/\(roomId)/messages?before=112835145339814022663129530368", token: owner.token)
        #expect(huge.status == 200 && (huge.json["messages"] as? [Any])?.count == 3, "\(huge.text)")
        #expect(try await s.request("GET", "/v1/rooms/\(roomId)/messages?after=-1", token: owner.token).error == "invalid_request")

        // Removal takes effect at once: the next send and read are refused.
        #expect(try await s.request("DELETE", "/v1/rooms/\(roomId)/members/\(ben.id)", token: ann.token).status == 200)
        #expect(
            try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ben.token, body: ["body": "still here?"]).error
                == "not_a_member")
        #expect(try await s.request("GET", "/v1/rooms/\(roomId)/messages", token: ben.token).error == "not_a_member")
        // The owner leaves: the admin inherits the room.
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/leave", token: owner.token).status == 200)
        _ = try await s.until("/v1/rooms", token: ann.token) {
            (($0.json["rooms"] as? [[String: Any]])?.first?["myRole"] as? String) == "owner"
        }
        try await s.cleanUp()
    }

    @Test func badInputGetsTheContractsErrorsAndNeverA500() async throws {
        let s = try await ServerProcess()
        let user = try await s.register("inputs")
        let other = try await s.register("other")
        let created = try await s.request("POST", "/v1/rooms", token: user.token, body: ["name": "r"])
        let roomId = try #require(created["room", "id"] as? String)
        let cases: [(String, String, Any?, Int, String)] = [
            ("POST", "/v1/rooms", Data("{not json".utf8), 400, "invalid_json"),
            ("POST", "/v1/rooms", ["name": 42], 400, "invalid_request"),
            ("POST", "/v1/rooms", ["nope": "x"], 400, "invalid_request"),
            ("POST", "/v1/rooms", ["name": ""], 400, "invalid_request"),
            ("POST", "/v1/rooms/\(roomId)/messages", ["body": String(repeating: "x", count: 4001)], 413, "too_large"),
            (
                "POST", "/v1/rooms/\(roomId)/messages", Data(("{\"body\":\"" + String(repeating: "x", count: 70_000) + "\"}").utf8), 413,
                "too_large"
            ),
            ("POST", "/v1/rooms/\(roomId)/messages", ["body": "   "], 400, "invalid_request"),
            ("POST", "/v1/rooms/no-such-room/messages", ["body": "x"], 404, "not_found"),
            ("GET", "/v1/rooms/\(roomId)/messages?limit=0", nil, 400, "invalid_request"),
            ("GET", "/v1/rooms/\(roomId)/messages?before=abc", nil, 400, "invalid_request"),
            ("POST", "/v1/rooms/\(roomId)/read", ["seq": 99], 409, "conflict"),
            ("POST", "/v1/rooms/\(roomId)/read", ["seq": -1], 400, "invalid_request"),
            ("POST", "/v1/rooms/\(roomId)/join", nil, 409, "conflict"),
            ("DELETE", "/v1/rooms/\(roomId)/members/\(other.id)", nil, 404, "not_found"),
            ("GET", "/v1/nowhere", nil, 404, "not_found"),
            ("POST", "/v1/users/\(user.id)/messages", ["body": "me"], 409, "conflict"),
            ("POST", "/v1/auth/register", Data([0xff, 0xfe, 0x00]), 400, "invalid_json"),
        ]
        for (method, path, body, status, code) in cases {
            let result = try await s.request(method, path, token: user.token, body: body)
            #expect(result.status == status && result.error == code, "\(method) \(path): \(result.status) \(result.json)")
            #expect((result.json["error"] as? [String: Any])?["message"] is String)
        }
        try await s.cleanUp()
    }
}
