import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Every room endpoint × every kind of caller, each on a fresh room, with the exact status
/// and error code expected in each cell.
@Suite("Authorization matrix")
struct AuthorizationMatrixTests {
    enum Principal: String, CaseIterable {
        case noToken = "no token"
        case expired, forged
        case algNone = "alg none"
        case outsider, invited, member, admin, owner, removed
    }

    struct Endpoint {
        let name: String
        let method: String
        /// The path for a room and its message, and the target member.
        let path: (_ room: String, _ message: String, _ target: String) -> String
        let body: (_ newbie: String) -> [String: Any]?
    }

    static var endpoints: [Endpoint] {
        [
            .init(name: "get room", method: "GET", path: { r, _, _ in "/v1/rooms/\(r)" }, body: { _ in nil }),
            .init(name: "rename", method: "PATCH", path: { r, _, _ in "/v1/rooms/\(r)" }, body: { _ in ["name": "Renamed"] }),
            .init(name: "invite", method: "POST", path: { r, _, _ in "/v1/rooms/\(r)/invites" }, body: { n in ["userId": n] }),
            .init(name: "join", method: "POST", path: { r, _, _ in "/v1/rooms/\(r)/join" }, body: { _ in nil }),
            .init(name: "decline", method: "POST", path: { r, _, _ in "/v1/rooms/\(r)/decline" }, body: { _ in nil }),
            .init(name: "leave", method: "POST", path: { r, _, _ in "/v1/rooms/\(r)/leave" }, body: { _ in nil }),
            .init(name: "remove member", method: "DELETE", path: { r, _, t in "/v1/rooms/\(r)/members/\(t)" }, body: { _ in nil }),
            .init(
                name: "set role", method: "PUT", path: { r, _, t in "/v1/rooms/\(r)/members/\(t)/role" }, body: { _ in ["role": "admin"] }),
            .init(name: "send", method: "POST", path: { r, _, _ in "/v1/rooms/\(r)/messages" }, body: { _ in ["body": "hi"] }),
            .init(name: "history", method: "GET", path: { r, _, _ in "/v1/rooms/\(r)/messages" }, body: { _ in nil }),
            .init(
                name: "edit member's message", method: "PATCH", path: { r, m, _ in "/v1/rooms/\(r)/messages/\(m)" },
                body: { _ in ["body": "edited"] }),
            .init(
                name: "delete member's message", method: "DELETE", path: { r, m, _ in "/v1/rooms/\(r)/messages/\(m)" }, body: { _ in nil }),
            .init(name: "read receipt", method: "POST", path: { r, _, _ in "/v1/rooms/\(r)/read" }, body: { _ in ["seq": 1] }),
            .init(
                name: "react", method: "POST", path: { r, m, _ in "/v1/rooms/\(r)/messages/\(m)/reactions" }, body: { _ in ["emoji": "👍"] }),
            .init(
                name: "unreact", method: "DELETE", path: { r, m, _ in "/v1/rooms/\(r)/messages/\(m)/reactions/%F0%9F%91%8D" },
                body: { _ in nil }),
            .init(name: "pin", method: "PUT", path: { r, m, _ in "/v1/rooms/\(r)/pins/\(m)" }, body: { _ in nil }),
            .init(name: "unpin", method: "DELETE", path: { r, m, _ in "/v1/rooms/\(r)/pins/\(m)" }, body: { _ in nil }),
            .init(name: "pins", method: "GET", path: { r, _, _ in "/v1/rooms/\(r)/pins" }, body: { _ in nil }),
            .init(name: "thread page", method: "GET", path: { r, m, _ in "/v1/rooms/\(r)/messages/\(m)/thread" }, body: { _ in nil }),
            .init(name: "receipts", method: "GET", path: { r, _, _ in "/v1/rooms/\(r)/receipts" }, body: { _ in nil }),
            .init(name: "ban member", method: "POST", path: { r, _, t in "/v1/rooms/\(r)/bans/\(t)" }, body: { _ in ["reason": "x"] }),
            .init(name: "unban member", method: "DELETE", path: { r, _, t in "/v1/rooms/\(r)/bans/\(t)" }, body: { _ in nil }),
            .init(name: "bans", method: "GET", path: { r, _, _ in "/v1/rooms/\(r)/bans" }, body: { _ in nil }),
            .init(name: "mute member", method: "POST", path: { r, _, t in "/v1/rooms/\(r)/mutes/\(t)" }, body: { _ in nil }),
            .init(name: "search the room", method: "GET", path: { r, _, _ in "/v1/search?q=mine&roomId=\(r)" }, body: { _ in nil }),
            .init(name: "unmute member", method: "DELETE", path: { r, _, t in "/v1/rooms/\(r)/mutes/\(t)" }, body: { _ in nil }),
        ]
    }

    /// Each row's answers for: no token, expired, forged, alg none, outsider, invited,
    /// member, admin, owner, removed (the member's message is the one edited or deleted).
    static var rows: [(String, [String])] {
        let bad = Array(repeating: "401 unauthorized", count: 4)
        let out = "403 not_a_member"
        let no = "403 forbidden"
        let conflict = "409 conflict"
        return [
            ("get room", bad + [out, "200", "200", "200", "200", out]),
            ("rename", bad + [out, out, no, "200", "200", out]),
            ("invite", bad + [out, out, no, "201", "201", out]),
            ("join", bad + [no, "200", conflict, conflict, conflict, no]),
            ("decline", bad + [no, "200", conflict, conflict, conflict, no]),
            ("leave", bad + [out, out, "200", "200", "200", out]),
            ("remove member", bad + [out, out, no, "200", "200", out]),
            ("set role", bad + [out, out, no, no, "200", out]),
            ("send", bad + [out, out, "201", "201", "201", out]),
            ("history", bad + [out, out, "200", "200", "200", out]),
            ("edit member's message", bad + [out, out, "200", no, no, out]),
            ("delete member's message", bad + [out, out, "200", "200", "200", out]),
            ("read receipt", bad + [out, out, "200", "200", "200", out]),
            ("react", bad + [out, out, "201", "201", "201", out]),
            ("unreact", bad + [out, out, "200", "200", "200", out]),
            ("pin", bad + [out, out, no, "201", "201", out]),
            ("unpin", bad + [out, out, no, "200", "200", out]),
            ("pins", bad + [out, out, "200", "200", "200", out]),
            ("thread page", bad + [out, out, "200", "200", "200", out]),
            ("receipts", bad + [out, out, "200", "200", "200", out]),
            ("ban member", bad + [out, out, no, "200", "200", out]),
            ("unban member", bad + [out, out, no, "200", "200", out]),
            ("bans", bad + [out, out, no, "200", "200", out]),
            ("mute member", bad + [out, out, no, "200", "200", out]),
            ("unmute member", bad + [out, out, no, "200", "200", out]),
            ("search the room", bad + [out, out, "200", "200", "200", out]),
        ]
    }

    static var expected: [String: [Principal: String]] {
        Dictionary(
            uniqueKeysWithValues: rows.map { name, answers in
                (name, Dictionary(uniqueKeysWithValues: zip(Principal.allCases, answers)))
            })
    }

    @Test func everyRoomEndpointAnswersEachKindOfCallerAsTheRulesSay() async throws {
        let s = try await ServerProcess()
        var users: [String: (id: String, token: String)] = [:]
        for name in ["owner", "admin", "member", "invited", "outsider", "removed", "target", "newbie"] {
            users[name] = try await s.register("am\(name)")
        }
        let owner = users["owner"]!
        /// A room as every cell starts: owner, admin, member and target joined, invited
        /// pending, removed removed, and a message of the member's (seq 1).
        func freshRoom() async throws -> (room: String, message: String) {
            let invite = ["admin", "member", "invited", "removed", "target"].map { users[$0]!.id }
            let created = try await s.request("POST", "/v1/rooms", token: owner.token, body: ["name": "Matrix", "invite": invite])
            let room = try #require(created["room", "id"] as? String)
            for name in ["admin", "member", "removed", "target"] {
                #expect(try await s.request("POST", "/v1/rooms/\(room)/join", token: users[name]!.token).status == 200)
            }
            #expect(
                try await s.request(
                    "PUT", "/v1/rooms/\(room)/members/\(users["admin"]!.id)/role", token: owner.token, body: ["role": "admin"]
                ).status == 200)
            #expect(try await s.request("DELETE", "/v1/rooms/\(room)/members/\(users["removed"]!.id)", token: owner.token).status == 200)
            let sent = try await s.request("POST", "/v1/rooms/\(room)/messages", token: users["member"]!.token, body: ["body": "mine"])
            return (room, try #require(sent["message", "id"] as? String))
        }
        func token(_ principal: Principal) -> String? {
            let id = users["member"]!.id
            switch principal {
            case .noToken: return nil
            case .expired: return jwt(sub: id, exp: Date().addingTimeInterval(-600), secret: ServerProcess.secret)
            case .forged: return jwt(sub: id, exp: Date().addingTimeInterval(600), secret: String(repeating: "f", count: 48))
            case .algNone: return jwt(sub: id, exp: Date().addingTimeInterval(600), secret: nil, alg: "none")
            default: return users[principal.rawValue]!.token
            }
        }

        var observed: [String: [Principal: String]] = [:]
        let shared = try await freshRoom()
        for endpoint in Self.endpoints {
            for principal in Principal.allCases {
                let (room, message) = [.noToken, .expired, .forged, .algNone].contains(principal) ? shared : try await freshRoom()
                let result = try await s.request(
                    endpoint.method, endpoint.path(room, message, users["target"]!.id), token: token(principal),
                    body: endpoint.body(users["newbie"]!.id))
                #expect(result.status != 500)
                observed[endpoint.name, default: [:]][principal] = result.error.map { "\(result.status) \($0)" } ?? "\(result.status)"
            }
        }
        for endpoint in Self.endpoints {
            for principal in Principal.allCases {
                #expect(
                    observed[endpoint.name]?[principal] == Self.expected[endpoint.name]?[principal],
                    "\(endpoint.name) as \(principal.rawValue)")
            }
        }

        // The WebSocket: a bad token is told so in an error frame and closed with 4401 (the
        // frame after the error is the close: no hello, no event); each role's frames get the same answers as HTTP (an
        // ack, or an error frame with the code).
        for principal in [Principal.noToken, .expired, .forged, .algNone] {
            let (error, closeCode) = try await RawWebSocket.refusal(
                port: s.port, path: "/v1/ws" + (token(principal).map { "?token=\($0)" } ?? ""))
            #expect(error["type"] as? String == "error" && error["code"] as? String == "unauthorized", "\(principal.rawValue): \(error)")
            #expect(closeCode == 4401, "\(principal.rawValue)")
        }
        let frames: [(name: String, frame: (String) -> [String: Any])] = [
            ("send", { ["type": "send", "roomId": $0, "body": "over ws", "clientMsgId": "m"] }),
            ("typing", { ["type": "typing", "roomId": $0] }),
            ("read", { ["type": "read", "roomId": $0, "seq": 1] }),
        ]
        let expectedFrames: [Principal: [String]] = [
            .outsider: ["not_a_member", "not_a_member", "not_a_member"], .removed: ["not_a_member", "not_a_member", "not_a_member"],
            .invited: ["not_a_member", "not_a_member", "not_a_member"], .member: ["ack", "none", "none"],
            .admin: ["ack", "none", "none"], .owner: ["ack", "none", "none"],
        ]
        for (principal, answers) in expectedFrames {
            let (room, _) = try await freshRoom()
            let ws = WSTestClient(port: s.port, token: token(principal)!)
            _ = try await ws.next(type: "hello")
            for ((name, frame), expected) in zip(frames, answers) {
                try ws.send(frame(room))
                // A ping after each frame: whatever the frame answers comes before the pong.
                try ws.send(["type": "ping"])
                var answer = "none"
                while true {
                    let next = try await ws.next()
                    let type = next["type"] as? String
                    if type == "pong" { break }
                    if type == "ack" { answer = "ack" } else if type == "error" { answer = next["code"] as? String ?? "?" }
                }
                #expect(answer == expected, "\(name) frame as \(principal.rawValue)")
            }
            ws.close()
        }
        try await s.cleanUp()
    }

    /// The endpoints that belong to no room × the kinds of token: each answers 401
    /// `unauthorized` to a missing, expired, forged or unsigned token and to a well-signed
    /// token of a user that does not exist, and does its work for a real user.
    @Test func everyAccountEndpointAnswersEachKindOfTokenAsTheRulesSay() async throws {
        let s = try await ServerProcess()
        let me = try await s.register("acme")
        let other = try await s.register("acother")
        let kinds = ["no token", "expired", "forged", "alg none", "unknown user", "user"]
        func token(_ kind: String) -> String? {
            switch kind {
            case "no token": return nil
            case "expired": return jwt(sub: me.id, exp: Date().addingTimeInterval(-600), secret: ServerProcess.secret)
            case "forged": return jwt(sub: me.id, exp: Date().addingTimeInterval(600), secret: String(repeating: "f", count: 48))
            case "alg none": return jwt(sub: me.id, exp: Date().addingTimeInterval(600), secret: nil, alg: "none")
            case "unknown user": return jwt(sub: "u-does-not-exist", exp: Date().addingTimeInterval(600), secret: ServerProcess.secret)
            default: return me.token
            }
        }
        let endpoints: [(name: String, method: String, path: String, body: [String: Any]?, success: String)] = [
            ("me", "GET", "/v1/me", nil, "200"),
            ("user by id", "GET", "/v1/users/\(other.id)", nil, "200"),
            ("user by name", "GET", "/v1/users?username=acother", nil, "200"),
            ("private message", "POST", "/v1/users/\(other.id)/messages", ["body": "hello"], "201"),
            ("create room", "POST", "/v1/rooms", ["name": "Mine"], "201"),
            ("room list", "GET", "/v1/rooms", nil, "200"),
            ("invites", "GET", "/v1/invites", nil, "200"),
            ("presence", "GET", "/v1/users/\(other.id)/presence", nil, "200"),
            ("block", "PUT", "/v1/me/blocks/\(other.id)", nil, "200"),
            ("my blocks", "GET", "/v1/me/blocks", nil, "200"),
            ("unblock", "DELETE", "/v1/me/blocks/\(other.id)", nil, "200"),
            ("search", "GET", "/v1/search?q=hello", nil, "200"),
        ]
        var observed: [String: [String]] = [:]
        var expected: [String: [String]] = [:]
        for endpoint in endpoints {
            expected[endpoint.name] = Array(repeating: "401 unauthorized", count: 5) + [endpoint.success]
            for kind in kinds {
                let result = try await s.request(endpoint.method, endpoint.path, token: token(kind), body: endpoint.body)
                observed[endpoint.name, default: []].append(result.error.map { "\(result.status) \($0)" } ?? "\(result.status)")
            }
        }
        for endpoint in endpoints {
            #expect(
                observed[endpoint.name] == expected[endpoint.name],
                "\(endpoint.name): \(zip(kinds, observed[endpoint.name] ?? []).map { "\($0): \($1)" })")
        }
        // Register and log in take no token, and a bad one changes nothing.
        for kind in kinds {
            let login = try await s.request(
                "POST", "/v1/auth/login", token: token(kind), body: ["username": "acme", "password": "long enough password"])
            #expect(login.status == 200, "login with \(kind)")
        }
        try await s.cleanUp()
    }
}
