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
}
