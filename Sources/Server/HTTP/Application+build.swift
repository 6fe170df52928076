import Drivers
import EventLog
import Foundation
import Hummingbird
import Logging
import Projections
import ServiceLifecycle

/// What one server process shares between its parts.
struct ServerContext: Sendable {
    let configuration: ServerConfiguration
    let stores: Stores
    let log: EventLog
    let scheduler: PriorityScheduler
    let lag: ProjectionLag
}

/// Builds the Hummingbird application for `configuration` on already opened `stores`:
/// the HTTP routes, and with the `projectors` role the projector runners as services.
func buildApplication(_ configuration: ServerConfiguration, stores: Stores, logger: Logger) async throws -> some ApplicationProtocol {
    let context = ServerContext(
        configuration: configuration, stores: stores,
        log: EventLog(
            redis: stores.redis, partitions: configuration.logPartitions, namespace: configuration.namespace,
            maxMessageBytes: configuration.maxMessageBytes, logger: logger),
        scheduler: PriorityScheduler(workers: 2), lag: ProjectionLag())
    var services: [any Service] = []
    if configuration.roles.contains(.projectors) {
        let projectors: [any Projector] = [
            MetadataProjector(postgres: stores.postgres, schema: configuration.postgresSchema),
            MessagesProjector(mongo: stores.mongo, collection: configuration.mongoCollection),
        ]
        services += projectors.map {
            ProjectorRunner($0, log: context.log, scheduler: context.scheduler, lag: context.lag, logger: logger)
        }
    }
    let router = Router(context: ParleyContext.self)
    router.add(middleware: ErrorMiddleware())
    if configuration.roles.contains(.api) {
        let api = API(
            log: context.log,
            metadata: MetadataReadModel(postgres: stores.postgres, schema: configuration.postgresSchema),
            messages: MessagesReadModel(mongo: stores.mongo, collection: configuration.mongoCollection),
            tokens: await Tokens(secret: configuration.jwtSecret, lifetime: configuration.tokenLifetime),
            passwords: Passwords(cost: configuration.bcryptCost), maxBodyBytes: configuration.maxBodyBytes)
        let v1 = router.group("v1")
        api.register(v1, authenticated: v1.group().add(middleware: AuthMiddleware(api: api)))
    }
    router.get("healthz") { _, _ in
        HealthStatus(status: "ok")
    }
    router.get("readyz") { _, _ -> Response in
        do {
            try await stores.check()
        } catch {
            return try jsonResponse(HealthStatus(status: "unavailable", detail: "\(error)"), status: .serviceUnavailable)
        }
        let worst = context.lag.worst
        if configuration.roles.contains(.projectors), worst.milliseconds > configuration.readyMaxLagMs {
            return try jsonResponse(
                HealthStatus(status: "lagging", detail: "projectors are \(worst.milliseconds) ms (\(worst.events) events) behind the log"),
                status: .serviceUnavailable)
        }
        return try jsonResponse(HealthStatus(status: "ok", lagEvents: worst.events, lagMs: worst.milliseconds), status: .ok)
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "parley"),
        services: services,
        logger: logger)
}

struct HealthStatus: ResponseEncodable {
    var status: String
    var detail: String?
    var lagEvents: Int?
    var lagMs: Int64?
}

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status) throws -> Response {
    let data = try JSONEncoder().encode(value)
    return Response(
        status: status, headers: [.contentType: "application/json; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
