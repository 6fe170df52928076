import Events
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// The request context of every route: the authenticated user (set by `AuthMiddleware`)
/// and JSON coders whose dates are ISO 8601 with milliseconds, like events.
struct ParleyContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    var userId: String?
    /// The client's address (rate limits on account creation).
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    var responseEncoder: JSONEncoder { EventCodec.makeEncoder() }

    /// The authenticated user; routes behind `AuthMiddleware` always have one.
    func user() throws -> String {
        guard let userId else { throw APIError.unauthorized() }
        return userId
    }
}

/// Requires `Authorization: Bearer <jwt>` for a user the log knows; 401 otherwise.
struct AuthMiddleware: RouterMiddleware {
    let api: API

    func handle(_ request: Request, context: ParleyContext, next: (Request, ParleyContext) async throws -> Response) async throws
        -> Response
    {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw APIError.unauthorized()
        }
        var context = context
        context.userId = try await api.authenticate(token: String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces))
        return try await next(request, context)
    }
}

extension Request {
    /// Decodes a JSON body of at most `limit` bytes: 413 `too_large` above it, 400
    /// `invalid_json` for bytes that are not JSON, 400 `invalid_request` for JSON of the
    /// wrong shape (naming the field).
    func json<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, .tooLarge, "the request body is over \(limit) bytes")
        }
        return try Self.decode(T.self, Data(buffer.readableBytesView))
    }

    /// Like `json`, for an optional body: nil when the request has none (or only white space).
    func jsonIfAny<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T? {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, .tooLarge, "the request body is over \(limit) bytes")
        }
        let data = Data(buffer.readableBytesView)
        if data.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) { return nil }
        return try Self.decode(T.self, data)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        guard (try? JSONSerialization.jsonObject(with: data)) != nil else {
            throw APIError(.badRequest, .invalidJSON, "the request body is not valid JSON")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw APIError.invalid("the field \(key.stringValue) is required")
        } catch let DecodingError.typeMismatch(_, context) {
            throw APIError.invalid("the field \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw APIError.invalid("the field \(context.codingPath.map(\.stringValue).joined(separator: ".")) must not be null")
        } catch {
            throw APIError.invalid("the request body does not have the expected fields")
        }
    }
}

/// The request context of the WebSocket route. It keeps the connection's channel: a
/// client that stops reading cannot be sent even a close frame (the write waits for it
/// forever), so the session drops the TCP connection itself after a short grace.
///
/// hummingbird-websocket 2.8.1 stores the matched handler, with a copy of this context, in
/// the context's own `webSocket` reference and never clears it: a reference cycle that kept
/// every upgraded connection's context, and through `channel` its closed NIO channel, alive
/// for good (about 5 KB per connection opened and closed). The reference is therefore held
/// in a box of ours, which each WebSocket route empties first (`releaseUpgradeReference`),
/// once the upgrade has read it.
struct ParleyWebSocketContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    private let reference: NIOLockedValueBox<WebSocketHandlerReference<Self>?>
    private let life = ContextLife()

    var webSocket: WebSocketHandlerReference<Self> { reference.withLockedValue { $0 ?? .init() } }

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.reference = NIOLockedValueBox(.init())
    }

    /// Breaks the library's cycle: the handler was read at the upgrade, nothing reads it again.
    func releaseUpgradeReference() {
        reference.withLockedValue { $0 = nil }
    }
}

/// Counts the WebSocket request contexts alive (`parley_ws_contexts_alive`): with every
/// connection closed it must come back to 0, or something still holds them.
final class ContextLife: Sendable {
    private static let alive = NIOLockedValueBox(0)

    init() { Self.record(+1) }
    deinit { Self.record(-1) }

    private static func record(_ change: Int) {
        let count = alive.withLockedValue { count in
            count += change
            return count
        }
        Gauge(label: "parley.ws.contexts_alive").record(count)
    }
}
