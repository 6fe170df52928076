import ArgumentParser
import Dispatch
import Drivers
import Foundation
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One WebSocket client of the benchmark on HummingbirdWSClient (`--client async`): sends
/// what it is given, and records every `message.sent` of another user it receives. Frames
/// are read by looking for the few fields needed (a full JSON parse per frame would cost
/// the generator more CPU than the server spends on it).
final class BenchClient: LoadClient {
    private let outgoing: AsyncStream<String>.Continuation
    private let task: Task<Void, Never>
    private let connected = NIOLockedValueBox<Bool?>(nil)

    required init(port: Int, token: String, userId: String, recorder: DeliveryRecorder?) {
        let (stream, outgoing) = AsyncStream<String>.makeStream()
        self.outgoing = outgoing
        let connected = self.connected
        let mine = Array("\"actorId\":\"\(userId)\"".utf8)
        task = Task {
            do {
                _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/v1/ws?token=\(token)", logger: Logger(label: "bench")) {
                    inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                guard case .text(var text) = message else { continue }
                                let now = DispatchTime.now().uptimeNanoseconds
                                // Connected once the hub has the session: events after `hello` come to it.
                                switch text.withUTF8({ Self.read($0, mine: mine) }) {
                                case .hello: connected.withLockedValue { $0 = true }
                                case .delivery(let phase, let scheduled): recorder?.record(phase: phase, scheduled: scheduled, at: now)
                                case .ack(let phase, let scheduled): recorder?.recordAck(phase: phase, scheduled: scheduled, at: now)
                                case .receipt: recorder?.recordReceipt(at: now)
                                case .error: recorder?.error(text)
                                case .other: continue
                                }
                            }
                        }
                        group.addTask {
                            for await text in stream { try await outbound.write(.text(text)) }
                            try await outbound.close(.normalClosure, reason: nil)
                        }
                        _ = try await group.next()
                        group.cancelAll()
                    }
                }
            } catch {
                connected.withLockedValue { if $0 == nil { $0 = false } }
            }
        }
    }

    enum Received {
        case hello
        case delivery(Int, UInt64)
        case ack(Int, UInt64)
        /// Another user's read receipt or taking back of a reaction: a delivery with no time to measure.
        case receipt
        case error, other
    }

    /// Classifies a frame by searching its bytes, not by parsing it: `hello`, a message
    /// event of another user with a benchmark body, an error frame, or anything else.
    static func read(_ bytes: UnsafeBufferPointer<UInt8>, mine: [UInt8]) -> Received {
        func find(_ n: [UInt8]) -> Int? {
            guard let first = n.first, bytes.count >= n.count else { return nil }
            var i = 0
            while i <= bytes.count - n.count {
                guard let at = bytes[i...(bytes.count - n.count)].firstIndex(of: first) else { return nil }
                if n.indices.allSatisfy({ bytes[at + $0] == n[$0] }) { return at }
                i = at + 1
            }
            return nil
        }
        if bytes.starts(with: "{\"type\":\"hello\"".utf8) { return .hello }
        if bytes.starts(with: "{\"type\":\"error\"".utf8) { return .error }
        let ack = bytes.starts(with: "{\"type\":\"ack\"".utf8)
        let event = bytes.starts(with: "{\"type\":\"event\"".utf8) && find(mine) == nil
        guard ack || event else { return .other }
        // A message's body, or a reaction's emoji (the mixed runs'), carries p<phase> t<nanoseconds> (or p<phase>_t…).
        var i: Int
        if let body = find(Array("\"body\":\"p".utf8)) {
            i = body + 9
        } else if !ack, find(Array("\"type\":\"reaction.removed\"".utf8)) != nil {
            return .receipt  // its emoji carries the time of the reaction it takes back: counted, not timed
        } else if !ack, let emoji = find(Array("\"emoji\":\"p".utf8)) {
            i = emoji + 10
        } else {
            return event && find(Array("\"type\":\"room.read\"".utf8)) != nil ? .receipt : .other
        }
        var phase = 0
        var t: UInt64 = 0
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
            phase = phase * 10 + Int(bytes[i] - 48)
            i += 1
        }
        guard i + 1 < bytes.count, bytes[i] == 32 || bytes[i] == UInt8(ascii: "_"), bytes[i + 1] == UInt8(ascii: "t") else { return .other }
        i += 2
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
            t = t * 10 + UInt64(bytes[i] - 48)
            i += 1
        }
        return ack ? .ack(phase, t) : .delivery(phase, t)
    }

    func send(roomID: String, body: String) {
        outgoing.yield("{\"type\":\"send\",\"roomId\":\"\(roomID)\",\"body\":\"\(body)\"}")
    }

    func sendFrame(_ text: String) { outgoing.yield(text) }

    func waitUntilConnected(seconds: Double = 30) async throws {
        try await waitForConnection(connected, seconds: seconds)
    }

    func close() { outgoing.finish() }
}
