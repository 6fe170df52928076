import EventLog
import Events
import Foundation
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import ServiceLifecycle

/// Close codes Parley uses besides the standard ones (documented in the README).
enum ParleyCloseCode {
    /// The client did not read fast enough: its outbound queue overflowed.
    static let slowConsumer = WebSocketErrorCode.unknown(4001)
    /// No frame from the client within the idle timeout.
    static let idle = WebSocketErrorCode.unknown(4002)
    /// The user has as many WebSockets open as allowed.
    static let tooManyConnections = WebSocketErrorCode.unknown(4003)
    /// The token is missing, invalid, expired, or names no user: log in again.
    static let unauthorized = WebSocketErrorCode.unknown(4401)
    /// The stores could not answer (standard code 1013): reconnect later.
    static let tryAgainLater = WebSocketErrorCode.unknown(1013)
}

/// Serves one WebSocket (CONTRACT section 4): hello, the replayed events, then live
/// events, acks and errors from one bounded queue; client frames `send`, `typing`,
/// `read` and `ping`. Bad frames get an `error` frame and the connection stays open.
struct WebSocketSession {
    let api: API
    let hub: Hub
    let userId: String
    let signals: EphemeralSignals
    let idleTimeout: Duration
    let logger: Logger
    /// How long a close frame (4001 after an overflow, 4002 when idle) may take to go out
    /// before the TCP connection is dropped: a client that stopped reading never takes it.
    var closeGrace: Duration = .seconds(2)

    /// Serves the connection until it ends. `channel` is the WebSocket's NIO channel: the
    /// hub writes live frames straight onto it. `drop` closes the TCP connection at once.
    func serve(
        since: String?, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel,
        drop: @escaping @Sendable () -> Void
    ) async throws {
        let position = since.flatMap { LogPosition(token: $0, partitions: api.log.partitioning.count) }
        let session: Hub.Session
        do {
            session = try await hub.connect(userId: userId, channel: channel, since: position, sinceGiven: since != nil)
        } catch let error as Hub.TooManyConnections {
            let message = "at most \(error.limit) WebSockets per user; close one first"
            try await outbound.write(.text(Frame.error(APIError(.tooManyRequests, .tooManyConnections, message))))
            try await outbound.close(ParleyCloseCode.tooManyConnections, reason: "too many connections")
            return
        }
        let connection = session.connection
        defer { hub.disconnect(connection) }
        // Hello and the replay go through the writer, which waits while the client is
        // behind (a replay may be far larger than the live queue); then the live events.
        // A client that does not take them within the idle timeout, or whose held live
        // events overflow meanwhile, is dropped: a stalled setup must not hold its task,
        // its socket and its held events forever.
        guard try await writeSetup(session, outbound: outbound, drop: drop) else { return }
        hub.activate(session)
        let lastActivity = NIOLockedValueBox(ContinuousClock.now)
        let idleTimeout = self.idleTimeout
        // On SIGTERM the server waits for its connections: close this one at once (1001).
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {  // the server ends the connection: a client too slow or idle, or shutdown
                    switch await connection.waitForEnding() {
                    case .overflow?:
                        logger.info("websocket closed: outbound queue overflowed", metadata: ["user": "\(userId)"])
                        await closeOrDrop(
                            ParleyCloseCode.slowConsumer, reason: "outbound queue full: client too slow", outbound: outbound, drop: drop)
                    case .idle?:
                        await closeOrDrop(ParleyCloseCode.idle, reason: "idle timeout", outbound: outbound, drop: drop)
                    case .shutdown?:
                        await closeOrDrop(.goingAway, reason: "server shutting down", outbound: outbound, drop: drop)
                    case nil:
                        return
                    }
                }
                group.addTask {  // reader
                    for try await message in inbound.messages(maxSize: api.maxBodyBytes) {
                        lastActivity.withLockedValue { $0 = .now }
                        await handle(message, connection: connection)
                    }
                }
                group.addTask {  // idle timeout: the task above closes; this one runs until cancelled
                    while true {
                        try await Task.sleep(for: idleTimeout / 4)
                        if ContinuousClock.now - lastActivity.withLockedValue({ $0 }) > idleTimeout { connection.end(.idle) }
                    }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            connection.end(.shutdown)
        }
    }

    /// Writes hello and the replay; false (and the TCP connection dropped, which fails a
    /// write still waiting) when the connection ended or the idle timeout passed first.
    private func writeSetup(_ session: Hub.Session, outbound: WebSocketOutboundWriter, drop: @Sendable () -> Void) async throws -> Bool {
        let connection = session.connection
        let idleTimeout = self.idleTimeout
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await outbound.write(.text(session.hello))
                for frame in session.replay { try await outbound.write(.text(frame)) }
                return true
            }
            group.addTask {
                _ = await connection.waitForEnding()
                return false
            }
            group.addTask {
                try await Task.sleep(for: idleTimeout)
                return false
            }
            let written = try await group.next() ?? false
            if !written { drop() }
            group.cancelAll()
            return written
        }
    }

    /// Sends a close frame; drops the connection when that has not gone out in `closeGrace`.
    private func closeOrDrop(
        _ code: WebSocketErrorCode, reason: String, outbound: WebSocketOutboundWriter, drop: @escaping @Sendable () -> Void
    ) async {
        let grace = closeGrace
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await outbound.close(code, reason: reason) }
            group.addTask {
                guard (try? await Task.sleep(for: grace)) != nil else { return }
                drop()
            }
            await group.next()
            group.cancelAll()
        }
    }

    func handle(_ message: WebSocketMessage, connection: HubConnection) async {
        guard case .text(let text) = message else {
            connection.send(Frame.error(.invalid("binary frames are not supported; send JSON text")))
            return
        }
        let data = Data(text.utf8)
        let frame: ClientFrame
        do { frame = try JSONDecoder().decode(ClientFrame.self, from: data) } catch {
            // Only a refused frame pays for telling bad JSON from a bad field (51 µs).
            if (try? JSONSerialization.jsonObject(with: data)) is [String: Any] {
                connection.send(Frame.error(.invalid("a frame needs a string type and fields of the right types")))
            } else {
                connection.send(Frame.error(APIError(.badRequest, .invalidJSON, "a frame is one JSON object")))
            }
            return
        }
        do {
            switch frame.type {
            case "ping":
                connection.send(Frame.pong)
            case "send":
                guard let body = frame.body else { throw APIError.invalid("send needs a body") }
                try api.commands.admitSend(userId)
                let destination: ChatCommands.Destination
                if let roomId = frame.roomId {
                    destination = .room(roomId)
                } else if let to = frame.toUserId {
                    destination = .user(to)
                } else {
                    throw APIError.invalid("send needs a roomId or a toUserId")
                }
                let sent = try await api.commands.send(
                    userId, to: destination, body: body, clientMsgId: frame.clientMsgId, replyTo: frame.replyTo,
                    threadRootId: frame.threadRootId, mentions: frame.mentions ?? [])
                connection.send(Frame.ack(ref: frame.clientMsgId, message: sent.message))
            case "typing":
                guard let roomId = frame.roomId else { throw APIError.invalid("typing needs a roomId") }
                guard hub.isMember(userId, of: roomId) else { throw RuleError(.notAMember, "not a member of room \(roomId)") }
                // Over the rate a typing signal is dropped without an error frame: it is only a hint, and a refusal would
                // be one more frame for a client that already sends too many.
                guard (try? api.commands.limits.admit(.typing, userId, scope: roomId)) != nil else { break }
                try await signals.typing(roomId: roomId, userId: userId)
            case "react":
                // No answer when it is done: the reaction's event comes to every member, this connection included.
                guard let roomId = frame.roomId, let messageId = frame.messageId, let emoji = frame.emoji else {
                    throw APIError.invalid("react needs a roomId, a messageId and an emoji")
                }
                _ = try await api.commands.react(userId, roomId: roomId, messageId: messageId, emoji: emoji, add: frame.remove != true)
            case "read":
                guard let roomId = frame.roomId, let seq = frame.seq else { throw APIError.invalid("read needs a roomId and a seq") }
                try await api.commands.markRead(userId, roomId: roomId, seq: seq)
            default:
                throw APIError.invalid("unknown frame type \(frame.type)")
            }
        } catch {
            let refusal = APIError.from(error)
            if refusal.status == .internalServerError { logger.error("websocket frame failed", metadata: ["error": "\(error)"]) }
            connection.send(Frame.error(refusal, ref: frame.clientMsgId ?? frame.ref))
        }
    }
}
