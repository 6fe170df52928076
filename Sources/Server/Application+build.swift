import Drivers
import Foundation
import Hummingbird
import Logging

/// Builds the Hummingbird application for `configuration` on already opened `stores`.
func buildApplication(_ configuration: ServerConfiguration, stores: Stores, logger: Logger) throws -> some ApplicationProtocol {
    let router = Router()
    router.get("healthz") { _, _ in
        HealthStatus(status: "ok")
    }
    router.get("readyz") { _, _ -> Response in
        do {
            try await stores.check()
            return try jsonResponse(HealthStatus(status: "ok"), status: .ok)
        } catch {
            return try jsonResponse(HealthStatus(status: "unavailable", detail: "\(error)"), status: .serviceUnavailable)
        }
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "parley"),
        logger: logger)
}

struct HealthStatus: ResponseEncodable {
    var status: String
    var detail: String?
}

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status) throws -> Response {
    let data = try JSONEncoder().encode(value)
    return Response(
        status: status, headers: [.contentType: "application/json; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
