import Foundation
import TestSupport
import Testing

/// Limits and hostile frames on the WebSocket: each gets a clear answer, and the server
/// keeps serving everyone else.
@Suite("WebSocket limits and bad frames")
struct WebSocketLimitsTests {
    @Test func aUserGetsAtMostTheConfiguredNumberOfConnections() async throws {
        let s = try await ServerProcess(environment: ["PARLEY_WS_MAX_CONNECTIONS_PER_USER": "2"])
        let ann = try await s.register("limann")
        /// Waits are generous (the whole suite runs at once on two cores); a failure says which step.
        func step<T>(_ name: String, _ body: () async throws -> T) async throws -> T {
            do { return try await body() } catch {
                Issue.record("step '\(name)' failed: \(error)")
                throw error
            }
        }
        let first = WSTestClient(port: s.port, token: ann.token)
        let second = WSTestClient(port: s.port, token: ann.token)
        _ = try await step("first hello") { try await first.next(type: "hello", seconds: 30) }
        _ = try await step("second hello") { try await second.next(type: "hello", seconds: 30) }
        // A third is told so and closed with 4003, never served (no hello).
        let (refusal, closeCode) = try await step("third refused") {
            try await RawWebSocket.refusal(port: s.port, path: "/v1/ws?token=\(ann.token)")
        }
        #expect(refusal["type"] as? String == "error" && refusal["code"] as? String == "too_many_connections", "\(refusal)")
        #expect(closeCode == 4003)
        // Closing one makes room for another.
        first.close()
        _ = try await step("first closed") { try await first.closed() }
        let fourth = try await step("fourth admitted") {
            try await eventually(seconds: 30) {
                let client = WSTestClient(port: s.port, token: ann.token)
                guard try await client.next(seconds: 30)["type"] as? String == "hello" else { throw URLError(.userAuthenticationRequired) }
                return client
            }
        }
        try second.send(["type": "ping"])
        #expect(try await step("second pong") { try await second.next(type: "pong", seconds: 30) }["type"] as? String == "pong")
        second.close()
        fourth.close()
        try await s.cleanUp()
    }

    @Test func anOversizedFrameClosesThatConnectionWith1009AndOthersAreServed() async throws {
        let s = try await ServerProcess(environment: ["PARLEY_MAX_BODY_BYTES": "2048"])
        let ann = try await s.register("bigann")
        let bob = try await s.register("bigbob")
        let annWS = WSTestClient(port: s.port, token: ann.token)
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await annWS.next(type: "hello")
        _ = try await bobWS.next(type: "hello")
        annWS.sendRaw(#"{"type":"send","toUserId":"\#(bob.id)","body":""# + String(repeating: "x", count: 5000) + #""}"#)
        #expect(try await annWS.closed()?.closeCode == .messageTooLarge)
        // Nothing of it was appended, and Bob is served as before.
        try bobWS.send(["type": "send", "toUserId": ann.id, "body": "still here", "clientMsgId": "b1"])
        let ack = try await bobWS.next(type: "ack")
        #expect(ack["message", "seq"] as? Int == 1)
        bobWS.close()
        try await s.cleanUp()
    }

    @Test func aBinaryFrameGetsAnErrorFrameAndInvalidUTF8Closes1007WhileOthersAreServed() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("utfann")
        let bob = try await s.register("utfbob")
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await bobWS.next(type: "hello")
        let raw = try RawWebSocket(port: s.port, path: "/v1/ws?token=\(ann.token)", receiveBuffer: 65536)
        try await raw.readUpgrade()
        let hello = try #require(try await raw.nextFrame())
        #expect(String(decoding: hello.payload, as: UTF8.self).hasPrefix(#"{"type":"hello""#))
        // A binary frame: an error frame, and the connection stays open.
        raw.sendFrame(opcode: 0x2, payload: [0, 1, 2, 3])
        let binary = try #require(try await raw.nextFrame())
        #expect(String(decoding: binary.payload, as: UTF8.self).contains(#""code":"invalid_request""#))
        raw.sendFrame(opcode: 0x1, payload: Array(#"{"type":"ping"}"#.utf8))
        let pong = try #require(try await raw.nextFrame())
        #expect(String(decoding: pong.payload, as: UTF8.self) == #"{"type":"pong"}"#)
        // A text frame whose bytes are not UTF-8 (a body that would be stored mangled):
        // RFC 6455's answer, close 1007, and nothing is appended.
        raw.sendFrame(
            opcode: 0x1, payload: Array(#"{"type":"send","toUserId":"\#(bob.id)","body":""#.utf8) + [0xC3, 0x28, 0xFF] + Array(#""}"#.utf8))
        let close = try #require(try await raw.nextFrame())
        #expect(close.opcode == 0x8 && close.payload.count >= 2 && Int(close.payload[0]) << 8 | Int(close.payload[1]) == 1007)
        // Bob is served as before, and Ann's broken send made no room and no message.
        try bobWS.send(["type": "send", "toUserId": ann.id, "body": "hello", "clientMsgId": "b1"])
        let ack = try await bobWS.next(type: "ack")
        #expect(ack["message", "seq"] as? Int == 1)
        bobWS.close()
        try await s.cleanUp()
    }
}
