import EventLog
import Events
import Foundation

/// The WebSocket frames of CONTRACT section 4, written as JSON text.
enum Frame {
    static func hello(userId: String, position: LogPosition, recovered: Bool) -> String {
        #"{"type":"hello","userId":\#(jsonString(userId)),"position":"\#(position)","recovered":\#(recovered)}"#
    }

    /// An event frame carries the event's stored JSON as it is (no re-encoding).
    static func event(_ logged: LoggedEvent, position: LogPosition) -> String {
        #"{"type":"event","position":"\#(position)","event":\#(logged.json)}"#
    }

    static func ack(ref: String?, message: MessageJSON) -> String {
        #"{"type":"ack","ref":\#(ref.map(jsonString) ?? "null"),"message":\#(message.json)}"#
    }

    /// An `error` frame: the same code and message an HTTP client gets for the same failure.
    static func error(_ error: APIError, ref: String? = nil) -> String {
        var text = #"{"type":"error","code":\#(jsonString(error.code.description)),"message":\#(jsonString(error.message))"#
        if let ref { text += #","ref":\#(jsonString(ref))"# }
        if let retryAfterMs = error.retryAfterMs { text += #","retryAfterMs":\#(retryAfterMs)"# }
        return text + "}"
    }

    static func typing(roomId: String, userId: String) -> String {
        #"{"type":"typing","roomId":\#(jsonString(roomId)),"userId":\#(jsonString(userId))}"#
    }

    static func presence(userId: String, online: Bool, lastSeen: Date) -> String {
        #"{"type":"presence","userId":\#(jsonString(userId)),"status":"\#(online ? "online" : "offline")","lastSeenAt":"\#(formatTimestamp(lastSeen))"}"#
    }

    static let pong = #"{"type":"pong"}"#
}

/// A frame from a client.
struct ClientFrame: Decodable {
    let type: String
    let roomId: String?
    let toUserId: String?
    let body: String?
    let clientMsgId: String?
    let replyTo: String?
    let threadRootId: String?
    let mentions: [String]?
    let seq: Int64?
    /// `react`: the message and the emoji; `remove: true` takes the reaction back.
    let messageId: String?
    let emoji: String?
    let remove: Bool?
    /// The client's reference for a frame other than `send`, echoed in an `error` frame.
    let ref: String?
}
