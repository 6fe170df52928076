import Drivers
import EventLog
import Events
import Foundation
import Hummingbird
import Metrics

/// An error as clients get it, over HTTP (CONTRACT section 3:
/// `{"error": {"code": "<snake_case>", "message": "...", "retryAfterMs"?: n}}`) and in
/// WebSocket `error` frames alike: the one error type of the server.
struct APIError: Error, HTTPResponseError, Sendable {
    /// The contract's error codes: stable values to switch on, written as snake_case.
    struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        static let invalidRequest = Code(raw: "invalid_request")
        static let invalidJSON = Code(raw: "invalid_json")
        static let unauthorized = Code(raw: "unauthorized")
        static let notFound = Code(raw: "not_found")
        static let methodNotAllowed = Code(raw: "method_not_allowed")
        static let tooLarge = Code(raw: "too_large")
        static let rateLimited = Code(raw: "rate_limited")
        static let tooManyConnections = Code(raw: "too_many_connections")
        static let serviceUnavailable = Code(raw: "service_unavailable")
        static let `internal` = Code(raw: "internal")
        /// A refusal of the rules keeps the rules' own code (`forbidden`, `not_a_member`, `conflict`, …).
        init(_ rule: RuleError.Code) { raw = rule.rawValue }
        private init(raw: String) { self.raw = raw }
        var description: String { raw }
    }

    let status: HTTPResponse.Status
    let code: Code
    let message: String
    var retryAfterMs: Int?

    init(_ status: HTTPResponse.Status, _ code: Code, _ message: String, retryAfterMs: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterMs = retryAfterMs
    }

    static func unauthorized(_ message: String = "a valid bearer token is required") -> APIError {
        APIError(.unauthorized, .unauthorized, message)
    }
    static func notFound(_ message: String) -> APIError { APIError(.notFound, .notFound, message) }
    static func invalid(_ message: String) -> APIError { APIError(.badRequest, .invalidRequest, message) }

    struct Body: Encodable {
        struct Detail: Encodable {
            let code: String
            let message: String
            let retryAfterMs: Int?
        }
        let error: Detail
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let retryAfterMs { headers[.retryAfter] = String(max(1, (retryAfterMs + 999) / 1000)) }
        let data = try JSONEncoder().encode(Body(error: .init(code: code.raw, message: message, retryAfterMs: retryAfterMs)))
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The contract's error for any failure of a handler: rule refusals keep their code,
    /// store outages are 503 `service_unavailable`, and nothing becomes a bare 500.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as RuleError:
            let status: HTTPResponse.Status
            switch error.code {
            case .invalidRequest: status = .badRequest
            case .notFound: status = .notFound
            case .notAMember, .forbidden: status = .forbidden
            case .conflict, .usernameTaken: status = .conflict
            case .tooLarge: status = .contentTooLarge
            }
            return APIError(status, Code(error.code), error.message)
        case let error as EventLog.LostEntries:
            Counter(label: "parley.log.appends_refused", dimensions: [("reason", "lost_entries")]).increment()
            return APIError(
                .serviceUnavailable, .serviceUnavailable,
                "the log lost its newest entries (partition \(error.partition)): nothing is appended there until an operator reconciles it")
        case let error as DriverError where error.refusedByRedis != nil:
            let reason = String(error.refusedByRedis ?? "")
            Counter(label: "parley.redis.refusals", dimensions: [("reason", reason)]).increment()
            return APIError(
                .serviceUnavailable, .serviceUnavailable, "the log's store refuses writes for now (\(reason)); try again shortly")
        case let error as DriverError where error.isTransient || error.code == .closed:
            return APIError(.serviceUnavailable, .serviceUnavailable, "\(error.store.rawValue) is unavailable; try again shortly")
        case let error as HTTPError:
            switch error.status {
            case .notFound: return .notFound("no such route")
            case .methodNotAllowed: return APIError(.methodNotAllowed, .methodNotAllowed, "method not allowed on this route")
            case .contentTooLarge: return APIError(.contentTooLarge, .tooLarge, "the request body is too large")
            default: return APIError(error.status, .invalidRequest, error.body ?? error.status.reasonPhrase)
            }
        default:
            return APIError(.internalServerError, .internal, "internal error")
        }
    }
}

/// Turns every error a route throws into the contract's error body (and logs the
/// unexpected ones, which are bugs).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            // No route: a documented path with another method is 405, with the methods it has.
            let allowed = OpenAPI.methods(forPath: request.uri.path)
            guard !allowed.isEmpty else { return try APIError.from(error).response(from: request, context: context) }
            let allow = allowed.map { $0.uppercased() }.joined(separator: ", ")
            var response = try APIError(.methodNotAllowed, .methodNotAllowed, "\(request.method) is not allowed here; allowed: \(allow)")
                .response(from: request, context: context)
            response.headers[.allow] = allow
            return response
        } catch {
            let api = APIError.from(error)
            if api.status == .internalServerError {
                context.logger.error("unexpected error", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            }
            return try api.response(from: request, context: context)
        }
    }
}
