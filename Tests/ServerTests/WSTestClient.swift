import Foundation
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers

/// A real WebSocket client for tests: collects every text frame it receives and sends
/// what the test gives it.
final class WSTestClient: Sendable {
    private let received = NIOLockedValueBox<(frames: [String], ended: Bool)>(([], false))
    private let outgoing: AsyncStream<String>.Continuation
    private let task: Task<WebSocketCloseFrame?, any Error>

    init(port: Int, token: String, since: String? = nil) {
        let (outgoingStream, outgoing) = AsyncStream<String>.makeStream()
        let received = self.received
        self.outgoing = outgoing
        var url = "ws://127.0.0.1:\(port)/v1/ws?token=\(token)"
        if let since { url += "&since=\(since)" }
        let finalURL = url
        task = Task {
            defer { received.withLockedValue { $0.ended = true } }
            return try await WebSocketClient.connect(url: finalURL, logger: Logger(label: "ws-test")) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 22) {
                            if case .text(let text) = message { received.withLockedValue { $0.frames.append(text) } }
                        }
                    }
                    group.addTask {
                        for await text in outgoingStream { try await outbound.write(.text(text)) }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        }
    }

    func send(_ frame: [String: Any]) throws {
        outgoing.yield(String(decoding: try JSONSerialization.data(withJSONObject: frame), as: UTF8.self))
    }

    func sendRaw(_ text: String) { outgoing.yield(text) }

    /// The next frame (as a JSON object), waiting at most `seconds`.
    func next(seconds: Double = 10) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while true {
            let (text, ended): (String?, Bool) = received.withLockedValue { state in
                state.frames.isEmpty ? (nil, state.ended) : (state.frames.removeFirst(), false)
            }
            if let text {
                guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                    throw URLError(.cannotParseResponse)
                }
                return object
            }
            if ended || ContinuousClock.now > deadline { throw URLError(ended ? .networkConnectionLost : .timedOut) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Frames until one of `type` comes (others are returned too, in order).
    func next(type: String, seconds: Double = 10) async throws -> [String: Any] {
        while true {
            let frame = try await next(seconds: seconds)
            if frame["type"] as? String == type { return frame }
        }
    }

    /// The close frame the server sent, once the connection ended.
    func closed() async throws -> WebSocketCloseFrame? { try await task.value }

    func close() { outgoing.finish() }
}

extension Dictionary where Key == String, Value == Any {
    subscript(path: String...) -> Any? {
        var value: Any? = self
        for key in path { value = (value as? [String: Any])?[key] }
        return value
    }
}
