import Events
import Foundation
import Hummingbird
import HummingbirdWebSocket
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
        let data = Data(buffer.readableBytesView)
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
struct ParleyWebSocketContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.channel = source.channel
    }
}
