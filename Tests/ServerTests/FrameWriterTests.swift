import Events
import Foundation
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import Server

/// The hand-written JSON of a message (every WebSocket `ack`) against JSONEncoder's.
@Suite("Hand-written message JSON")
struct FrameWriterTests {
    @Test(
        arguments: [
            ("plain", "c1", nil),
            ("quotes \" and \\ backslash, / slash", nil, "m-replied"),
            ("new\nline\ttab\r\u{1} control, \u{8} \u{c}", "id with \"quote\"", nil),
            ("émoji 👋🏽 and 中文", "", nil),
        ] as [(String, String?, String?)])
    func matchesJSONEncoder(body: String, clientMsgId: String?, replyTo: String?) throws {
        for deletedBody in [false, true] {
            let message = MessageJSON(
                id: "m1", roomId: "r\"1", seq: 123_456, senderId: "u1", body: deletedBody ? nil : body,
                clientMsgId: clientMsgId, sentAt: Date(timeIntervalSince1970: 1_795_000_000.123),
                editedAt: deletedBody ? Date(timeIntervalSince1970: 1_795_000_001.5) : nil,
                deleted: deletedBody, replyTo: replyTo, edits: nil)
            let encoded = try EventCodec.makeEncoder().encode(message)
            let handWritten = Data(message.json.utf8)
            let a = try JSONSerialization.jsonObject(with: handWritten) as? NSDictionary
            let b = try JSONSerialization.jsonObject(with: encoded) as? NSDictionary
            #expect(a != nil)
            #expect(a == b)
            // And the ack frame around it is one JSON object with the message inside.
            let frame = try JSONSerialization.jsonObject(with: Data(Frame.ack(ref: clientMsgId, message: message).utf8)) as? [String: Any]
            #expect(frame?["type"] as? String == "ack")
            #expect((frame?["message"] as? NSDictionary) == b)
        }
    }
}

/// The hub's frames are encoded by hand once per event (`HubConnection.textFrame`) and
/// written below NIO's encoder: they must be what NIO's decoder reads back, at every
/// length where the header changes (7-bit, 16-bit and 64-bit lengths).
@Suite("Hand-encoded WebSocket frames")
struct TextFrameTests {
    @Test(arguments: [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
    func nioDecodesTheFrame(length: Int) throws {
        // ASCII letters with an "é" (two bytes) every 97 characters.
        var text = ""
        for i in 0..<length {
            if i % 97 == 0 { text += "é" } else { text.unicodeScalars.append(UnicodeScalar(UInt8(97 + i % 26))) }
        }
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        defer { _ = try? channel.finish() }
        try channel.writeInbound(HubConnection.textFrame(text))
        let frame = try #require(try channel.readInbound(as: WebSocketFrame.self))
        #expect(frame.fin)
        #expect(frame.opcode == .text)
        #expect(frame.maskKey == nil)
        #expect(String(buffer: frame.unmaskedData) == text)
        // One frame, nothing left over.
        #expect(try channel.readInbound(as: WebSocketFrame.self) == nil)
    }
}
