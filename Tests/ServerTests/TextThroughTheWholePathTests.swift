import Foundation
import TestSupport
import Testing

/// Text the API accepts reaches the read models byte for byte; text it cannot keep (U+0000)
/// is refused at the door, over HTTP and WebSocket alike, and never reaches the log.
@Suite("Text through the whole path")
struct TextThroughTheWholePathTests {
    @Test func nulIsRefusedWith400AndAnErrorFrameAndOtherTextRoundTrips() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("textann")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "text"])
        let roomId = try #require(created["room", "id"] as? String)
        let refused = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "a\u{0}b"])
        #expect(refused.status == 400 && refused.error == "invalid_request")
        let renamed = try await s.request("PATCH", "/v1/rooms/\(roomId)", token: ann.token, body: ["name": "x\u{0}"])
        #expect(renamed.status == 400)
        let ws = WSTestClient(port: s.port, token: ann.token)
        _ = try await ws.next(type: "hello")
        try ws.send(["type": "send", "roomId": roomId, "body": "\u{0}", "clientMsgId": "nul"])
        let error = try await ws.next(type: "error")
        #expect(error["code"] as? String == "invalid_request" && error["ref"] as? String == "nul")
        // Every other control, astral characters, combining marks and right-to-left text arrive as sent.
        let awkward = "\u{1}\u{1F}\u{7F} 𝄞🙂 e\u{301} שלום\u{200F} \\\"'{}[],"
        let sent = try await s.request(
            "POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": awkward, "clientMsgId": "k😀"])
        #expect(sent.status == 201 && sent["message", "seq"] as? Int == 1)
        let history = try await s.until("/v1/rooms/\(roomId)/messages", token: ann.token) {
            (($0.json["messages"] as? [[String: Any]])?.count ?? 0) == 1
        }
        let message = try #require((history.json["messages"] as? [[String: Any]])?.first)
        #expect(message["body"] as? String == awkward && message["clientMsgId"] as? String == "k😀")
        let rooms = try await s.until("/v1/rooms", token: ann.token) {
            (($0.json["rooms"] as? [[String: Any]])?.first?["lastMessage"] as? [String: Any])?["body"] as? String == awkward
        }
        #expect(rooms.status == 200)
        ws.close()
        try await s.cleanUp()
    }

    /// Random text from every awkward corner of Unicode (C0 and C1 controls but NUL, combining
    /// marks, right-to-left marks and scripts, astral planes, quotes and backslashes), sent over
    /// HTTP and WebSocket as bodies, edits, `clientMsgId`s, room names and display names: each
    /// reads back scalar for scalar from history, the room list and the user, and `verify`
    /// finds both read models equal to the log.
    @Test func randomUnicodeReachesEveryReadModelScalarForScalar() async throws {
        var random = SplitMix64(seed: UInt64(Date().timeIntervalSince1970))
        let seed = random.state
        let s = try await ServerProcess()
        func same(_ a: String?, _ b: String?) -> Bool { a.map { Array($0.unicodeScalars) } == b.map { Array($0.unicodeScalars) } }
        let trimmed = { (text: String) in text.trimmingCharacters(in: .whitespacesAndNewlines) }

        let displayName = "d" + random.text(maxScalars: 40)
        let registered = try await s.request(
            "POST", "/v1/auth/register",
            body: [
                "username": "uni\(random.next() % 100_000)", "password": "long enough password",
                "displayName": displayName,
            ])
        #expect(registered.status == 201, "seed \(seed): \(registered.text)")
        let token = try #require(registered.json["token"] as? String)
        let me = try await s.until("/v1/me", token: token) { $0.status == 200 }
        #expect(same(me["user", "displayName"] as? String, trimmed(displayName)), "seed \(seed)")

        let roomName = "r" + random.text(maxScalars: 60)
        let room = try await s.request("POST", "/v1/rooms", token: token, body: ["name": roomName])
        #expect(room.status == 201, "seed \(seed): \(room.text)")
        let roomId = try #require(room["room", "id"] as? String)
        let ws = WSTestClient(port: s.port, token: token)
        _ = try await ws.next(type: "hello")

        var sent: [(body: String, clientMsgId: String)] = []
        for n in 0..<30 {
            let body = "m\(n) " + random.text(maxScalars: 200)
            let clientMsgId = "c\(n)" + random.text(maxScalars: 60)
            if n.isMultiple(of: 2) {
                let reply = try await s.request(
                    "POST", "/v1/rooms/\(roomId)/messages", token: token, body: ["body": body, "clientMsgId": clientMsgId])
                #expect(reply.status == 201, "seed \(seed): \(reply.text)")
            } else {
                try ws.send(["type": "send", "roomId": roomId, "body": body, "clientMsgId": clientMsgId])
                let ack = try await ws.next(type: "ack")
                #expect(same(ack["ref"] as? String, clientMsgId), "seed \(seed): \(ack)")
            }
            sent.append((body, clientMsgId))
        }
        let history = try await s.until("/v1/rooms/\(roomId)/messages?limit=100", token: token) {
            (($0.json["messages"] as? [Any])?.count ?? 0) == sent.count
        }
        var messages = (history.json["messages"] as? [[String: Any]] ?? []).sorted { ($0["seq"] as? Int ?? 0) < ($1["seq"] as? Int ?? 0) }
        for (message, expected) in zip(messages, sent) {
            #expect(same(message["body"] as? String, expected.body), "seed \(seed): seq \(message["seq"] ?? "?")")
            #expect(same(message["clientMsgId"] as? String, expected.clientMsgId), "seed \(seed): seq \(message["seq"] ?? "?")")
        }
        // Edits of five of them, and the room list's last message.
        var edited: [String: String] = [:]
        for message in messages.prefix(5) {
            let id = try #require(message["id"] as? String)
            let body = "e " + random.text(maxScalars: 200)
            let reply = try await s.request("PATCH", "/v1/rooms/\(roomId)/messages/\(id)", token: token, body: ["body": body])
            #expect(reply.status == 200, "seed \(seed): \(reply.text)")
            edited[id] = body
        }
        let after = try await s.until("/v1/rooms/\(roomId)/messages?limit=100", token: token) { reply in
            (reply.json["messages"] as? [[String: Any]] ?? []).filter { $0["editedAt"] is String }.count == edited.count
        }
        messages = after.json["messages"] as? [[String: Any]] ?? []
        for message in messages {
            guard let id = message["id"] as? String, let body = edited[id] else { continue }
            #expect(same(message["body"] as? String, body), "seed \(seed): edit of \(id)")
        }
        let rooms = try await s.request("GET", "/v1/rooms", token: token)
        let listed = (rooms.json["rooms"] as? [[String: Any]])?.first { $0["id"] as? String == roomId }
        #expect(same(listed?["name"] as? String, trimmed(roomName)), "seed \(seed)")
        #expect(same((listed?["lastMessage"] as? [String: Any])?["body"] as? String, sent.last?.body), "seed \(seed)")

        let verify = try await runParley(
            "parley-replay", ["verify"],
            environment: ["PARLEY_NAMESPACE": s.namespace, "PARLEY_POSTGRES_SCHEMA": s.schema, "PARLEY_MONGO_COLLECTION": s.schema])
        #expect(verify.status == 0, "seed \(seed): \(verify.stdout) \(verify.stderr)")
        ws.close()
        try await s.cleanUp()
    }
}

/// A small seeded generator (SplitMix64), so that a failing run can say its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Ranges of scalars a chat's text really holds, the awkward ones included (never U+0000, never a surrogate).
    static let ranges: [ClosedRange<UInt32>] = [
        0x01...0x1F, 0x20...0x7E, 0x7F...0x9F, 0xA0...0x24F, 0x300...0x36F, 0x591...0x5F4, 0x600...0x6FF,
        0x200B...0x200F, 0x2028...0x202E, 0x2066...0x2069, 0x3040...0x30FF, 0x4E00...0x4E80, 0xFE00...0xFE0F,
        0xFFF9...0xFFFD, 0x1D100...0x1D1FF, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x20100, 0xE0020...0xE007F,
    ]

    /// 1 to `maxScalars` scalars drawn from `ranges`, with quotes and backslashes now and then.
    mutating func text(maxScalars: Int) -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 1...maxScalars, using: &self) {
            if Int.random(in: 0..<12, using: &self) == 0 {
                scalars.append(["\"", "\\", "'", "{", "}"].randomElement(using: &self)!.unicodeScalars.first!)
                continue
            }
            let range = Self.ranges.randomElement(using: &self)!
            if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &self)) { scalars.append(scalar) }
        }
        return String(scalars)
    }
}
