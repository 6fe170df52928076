import Drivers
import EventLog
import Events
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import Projections
import Prometheus
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
            maxMessageBytes: configuration.maxMessageBytes, archive: configuration.readModels.archive(on: stores.postgres),
            dedupe: configuration.readModels.dedupe, logger: logger),
        // Four workers, at most two for any one projector: with three projectors (metadata, messages, search), two stuck
        // on a slow store still leave a worker for the third.
        scheduler: PriorityScheduler(workers: 4, perGroup: 2), lag: ProjectionLag())
    try await context.log.checkPartitionCount(claim: true)
    try await context.log.checkArchive(claim: true)
    // A group stops its services in reverse order: the stores last, after everything that
    // uses them, and the log's append writers after the hub and the projectors.
    var services: [any Service] = [stores, context.log]
    // One pointer to the live messages collection for the projector and the history readers (a shadow rebuild moves it).
    let messagesLocation = MessagesLocation(mongo: stores.mongo, base: configuration.mongoCollection)
    let projectors: [any Projector] = [
        MetadataProjector(postgres: stores.postgres, schema: configuration.postgresSchema),
        MessagesProjector(mongo: stores.mongo, location: messagesLocation),
        SearchProjector(postgres: stores.postgres, schema: configuration.postgresSchema),
    ]
    // The read models' tables and indexes exist before the first request reads them,
    // whichever roles this instance has.
    for projector in projectors { try await projector.prepare() }
    if let archive = context.log.reader.archive {
        try await archive.prepare()
        if configuration.roles.contains(.archiver) {
            var options = LogArchiver.Options()
            options.hotSeconds = configuration.readModels.logHotSeconds
            services.append(
                LogArchiver(
                    log: context.log, archive: archive, options: options, consumer: ProjectorRunner.defaultConsumerName(), logger: logger))
        }
    }
    if configuration.roles.contains(.projectors) {
        var options = ProjectorRunner.Options()
        options.lingerMs = configuration.projectorLingerMs
        services += projectors.map {
            ProjectorRunner($0, log: context.log, scheduler: context.scheduler, lag: context.lag, options: options, logger: logger)
        }
    }
    let router = Router(context: ParleyContext.self)
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: ErrorMiddleware())
    router.get("metrics") { _, _ -> Response in
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: metricsRegistry.emitToBuffer())))
    }
    let wsRouter = Router(context: ParleyWebSocketContext.self)
    if configuration.roles.contains(.api) {
        // The browser client (web/): static files, `/` is its index.html.
        if let web = webDirectory() {
            router.add(middleware: FileMiddleware(web.path, searchForIndexHtml: true, logger: logger))
        } else {
            logger.warning("no web/ folder found (set PARLEY_WEB_DIR): the browser client is not served")
        }
        let metadata = MetadataReadModel(postgres: stores.postgres, schema: configuration.postgresSchema)
        let api = API(
            log: context.log,
            commands: ChatCommands(
                log: context.log, limits: CommandLimits(configuration.commandRates),
                readPositions: { [metadata] userId, roomId in
                    guard let member = try await metadata.membership(roomId: roomId, userId: userId), member.state == .joined else {
                        return nil
                    }
                    return member.lastReadSeq
                }),
            metadata: metadata,
            messages: MessagesReadModel(mongo: stores.mongo, location: messagesLocation),
            searchReadModel: SearchReadModel(postgres: stores.postgres, schema: configuration.postgresSchema),
            tokens: await Tokens(secret: configuration.jwtSecret, lifetime: configuration.tokenLifetime),
            passwords: try await Passwords.make(cost: configuration.bcryptCost, maxQueued: configuration.maxQueuedPasswordChecks),
            maxBodyBytes: configuration.maxBodyBytes,
            registerLimiter: RateLimiter(
                perSecond: Double(configuration.registrationsPerMinute) / 60, burst: configuration.registrationsPerMinute),
            loginThrottle: LoginThrottle(
                attemptsPerMinute: configuration.loginsPerMinute, failuresPerHour: configuration.loginFailuresPerHour,
                failureBurst: configuration.loginFailureBurst),
            clientAddress: ClientAddress(trusted: configuration.trustedProxies))
        let v1 = router.group("v1")
        api.register(v1, authenticated: v1.group().add(middleware: AuthMiddleware(api: api)))

        let presence = Presence(
            store: context.log.presence(instance: Events.newID(), ttl: .seconds(configuration.presenceTTLSeconds)), log: context.log,
            logger: logger)
        let hub = Hub(
            log: context.log, logger: logger, queueCapacity: configuration.wsQueueFrames,
            maxConnectionsPerUser: configuration.wsMaxConnectionsPerUser, maxReplay: configuration.wsReplayMaxEvents,
            replayConcurrency: configuration.wsReplayConcurrency,
            replayBudget: RateLimiter(perSecond: Double(configuration.wsReplaysPerMinute) / 60, burst: configuration.wsReplayBurst),
            onPresence: { userId, online in presence.changed(userId, online: online) })
        presence.attach(hub)
        services.append(hub)
        services.append(presence)
        let signals = context.log.signals(logger: logger) { roomId, userId in hub.typing(roomId: roomId, userId: userId) }
        services.append(signals)
        let idle = Duration.seconds(configuration.wsIdleSeconds)
        // Every handshake is upgraded, and a refused one is told why in an `error` frame and
        // a close code: a browser cannot read the status of a refused handshake, so an HTTP
        // error there would reach a web client as a bare failure it retries forever.
        wsRouter.ws("/v1/ws") { inbound, outbound, wsContext in
            wsContext.requestContext.releaseUpgradeReference()
            let request = wsContext.request
            let userId: String
            do {
                // The token comes as ?token= (browsers cannot set headers on a WebSocket) or as a header.
                let header = request.headers[.authorization].flatMap {
                    $0.lowercased().hasPrefix("bearer ") ? String($0.dropFirst(7)) : nil
                }
                guard let token = request.uri.queryParameters["token"].map(String.init) ?? header else {
                    throw APIError.unauthorized("a token is required: ?token=<jwt> or an Authorization: Bearer header")
                }
                userId = try await api.authenticate(token: token)
            } catch {
                let refusal = APIError.from(error)
                try await outbound.write(.text(Frame.error(refusal)))
                // 4401 for a token refused; 1013 (try again later) when the stores could not answer.
                let code = refusal.status == .unauthorized ? ParleyCloseCode.unauthorized : ParleyCloseCode.tryAgainLater
                try await outbound.close(code, reason: refusal.code.description)
                return
            }
            let session = WebSocketSession(api: api, hub: hub, userId: userId, signals: signals, idleTimeout: idle, logger: logger)
            let channel = wsContext.requestContext.channel
            try await session.serve(
                since: request.uri.queryParameters["since"].map(String.init), inbound: inbound, outbound: outbound,
                channel: channel, drop: { channel.close(promise: nil) })
        }
    }
    if configuration.wsEcho {
        // Protocol conformance (scripts/autobahn): the frames, fragments, control frames,
        // UTF-8 checks and closes of Parley's WebSocket stack, without Parley's protocol.
        let maxSize = configuration.maxBodyBytes
        wsRouter.ws("/v1/ws/echo") { inbound, outbound, wsContext in
            wsContext.requestContext.releaseUpgradeReference()
            for try await message in inbound.messages(maxSize: maxSize) {
                switch message {
                case .text(let text): try await outbound.write(.text(text))
                case .binary(let bytes): try await outbound.write(.binary(bytes))
                }
            }
        }
    }
    router.get("openapi.json") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: OpenAPI.document)))
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
        if configuration.roles.contains(.projectors), let lost = context.lag.lostTail.first {
            return try jsonResponse(HealthStatus(status: "log_lost_entries", detail: "\(lost)"), status: .serviceUnavailable)
        }
        let worst = context.lag.worst
        if configuration.roles.contains(.projectors), worst.milliseconds > configuration.readyMaxLagMs {
            return try jsonResponse(
                HealthStatus(status: "lagging", detail: "projectors are \(worst.milliseconds) ms (\(worst.events) events) behind the log"),
                status: .serviceUnavailable)
        }
        return try jsonResponse(HealthStatus(status: "ok", lagEvents: worst.events, lagMs: worst.milliseconds), status: .ok)
    }
    if configuration.roles.contains(.api) {
        let found = OpenAPI.mismatches(routes: router.routes.map { ($0.method.rawValue, "\($0.path)") })
        guard found.undocumented.isEmpty && found.missing.isEmpty else {
            throw ServerConfiguration.Invalid(
                description: "the OpenAPI document does not match the routes: undocumented \(found.undocumented), missing \(found.missing)")
        }
    }
    return Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: wsRouter, configuration: .init(maxFrameSize: configuration.maxBodyBytes, validateUTF8: true)),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "parley"),
        services: services,
        logger: logger)
}

/// Where the browser client's files are: `PARLEY_WEB_DIR`, or a `web` folder in the
/// working directory or beside (or above) the executable, as for the migrations.
func webDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
    projectDirectory("web", variable: "PARLEY_WEB_DIR", containing: "index.html", environment: environment)
}

/// The Prometheus registry every metric of the process goes to (swift-metrics is
/// bootstrapped with it once, at start).
let metricsRegistry = PrometheusCollectorRegistry()

func bootstrapMetrics() {
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metricsRegistry))
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
