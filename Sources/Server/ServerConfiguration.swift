import Drivers
import Foundation
import Projections

/// Everything `parley-server` is configured with: flags, then environment, then defaults
/// (CONTRACT section 1), read in one place.
struct ServerConfiguration: Sendable {
    /// The parts of Parley one process runs.
    enum Role: String, Sendable, CaseIterable {
        case api
        case projectors
        /// Copies the log into the archive and trims the streams (`LogArchiver`).
        case archiver
    }

    var host = "127.0.0.1"
    var port = 8080
    var roles: Set<Role> = Set(Role.allCases)
    var stores = StoreConfiguration()
    var jwtSecret: String
    var devMode = false
    var logPartitions = 1
    var maxMessageBytes = 4000
    /// `/readyz` answers 503 while a projector is further behind the log than this.
    var readyMaxLagMs: Int64 = 5000
    /// The first part of every Redis key (`parley`): several deployments (or tests) can
    /// share one Redis with different namespaces.
    var namespace = "parley"
    /// The PostgreSQL schema of the metadata read models.
    var postgresSchema = "public"
    /// The MongoDB collection of messages.
    var mongoCollection = "messages"
    /// The log's archive and how long entries stay hot (`PARLEY_ARCHIVE`, `PARLEY_LOG_HOT_SECONDS`).
    var readModels = ReadModelSettings()
    /// How long a token is valid.
    var tokenLifetime: TimeInterval = 7 * 24 * 3600
    /// bcrypt cost for new password hashes (4 to 16; every +1 doubles the time).
    var bcryptCost: UInt8 = 12
    /// The largest request body accepted (413 above it), and the largest WebSocket frame.
    var maxBodyBytes = 64 * 1024
    /// Message sends a user may make per second, and the burst above that rate.
    var sendsPerSecond = 20
    var sendBurst = 40
    /// The other appending commands' rates per user (`PARLEY_RATE_<CLASS>_PER_MINUTE`, `PARLEY_RATE_<CLASS>_BURST`).
    var commandRates: [CommandLimits.Class: (perMinute: Int, burst: Int)] = [:]
    /// Accounts one client address may create per minute.
    var registrationsPerMinute = 10
    /// Login attempts one client address may make per minute.
    var loginsPerMinute = 30
    /// Failed logins one username may have per hour (from any address), and at once.
    var loginFailuresPerHour = 20
    var loginFailureBurst = 5
    /// Password hashes and checks that may wait for the thread pool at once (more get 503).
    var maxQueuedPasswordChecks = 64
    /// Proxies whose `X-Forwarded-For` names the client (`PARLEY_TRUSTED_PROXIES`, comma-separated addresses).
    var trustedProxies: Set<String> = []
    /// Frames a WebSocket may have queued before it is closed as too slow (4001).
    var wsQueueFrames = 1024
    /// Seconds without a frame from a client before its WebSocket is closed (4002).
    var wsIdleSeconds = 120
    /// WebSockets one user may have open at once (more get `too_many_connections`, 4003).
    var wsMaxConnectionsPerUser = 32
    /// How long an instance's presence mark of a user lasts unless renewed (`PARLEY_PRESENCE_TTL_SECONDS`): an instance
    /// that dies takes its users offline within this and one reap (5 s).
    var presenceTTLSeconds = 20
    /// Events at most replayed to one reconnecting client; more and it gets `recovered: false` and refetches.
    var wsReplayMaxEvents = 10_000
    /// Replays for reconnecting clients that run at once on one instance (the others wait).
    var wsReplayConcurrency = 4
    /// `PARLEY_WS_REPLAYS_PER_MINUTE` / `PARLEY_WS_REPLAY_BURST`: reconnections with `since` replayed per user; past the
    /// budget a reconnection gets `recovered: false` at once and nothing is read for it.
    var wsReplaysPerMinute = 30
    var wsReplayBurst = 10
    /// Milliseconds a projector waits after a small batch so that the next one is larger.
    var projectorLingerMs = 10
    /// `PARLEY_WS_ECHO=1`: also serve `/v1/ws/echo`, a WebSocket that echoes every message,
    /// on the same WebSocket stack and settings, for protocol conformance runs (Autobahn).
    var wsEcho = false

    /// A configuration error: one line, naming the setting that is wrong.
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// The JWT secret used in dev mode when none is given: never for production.
    static let devSecret = "parley-dev-mode-secret-do-not-use-in-production"

    init(jwtSecret: String = ServerConfiguration.devSecret) {
        self.jwtSecret = jwtSecret
    }

    /// Reads the environment, then applies the flags that were given.
    init(environment: [String: String], flags: ServeOptions) throws {
        func int(_ name: String, flag: Int?, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
            if let flag {
                guard range.contains(flag) else { throw Invalid(description: "--\(name) must be in \(range)") }
                return flag
            }
            let variable = "PARLEY_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            guard let text = environment[variable], !text.isEmpty else { return fallback }
            guard let value = Int(text), range.contains(value) else {
                throw Invalid(description: "\(variable)=\(text) is not a number in \(range)")
            }
            return value
        }
        let devText = environment["PARLEY_DEV_MODE"] ?? ""
        let devMode = flags.dev || ["1", "true", "yes"].contains(devText.lowercased())
        let secret = environment["PARLEY_JWT_SECRET"] ?? ""
        if secret.isEmpty && !devMode {
            throw Invalid(description: "PARLEY_JWT_SECRET is not set (required outside dev mode; set PARLEY_DEV_MODE=1 for local use)")
        }
        if !secret.isEmpty && secret.utf8.count < 32 {
            throw Invalid(description: "PARLEY_JWT_SECRET must be at least 32 bytes long (HS256 key)")
        }
        self.init(jwtSecret: secret.isEmpty ? Self.devSecret : secret)
        self.devMode = devMode
        self.host = flags.host ?? environment["PARLEY_HTTP_HOST"] ?? "127.0.0.1"
        self.port = try int("http-port", flag: flags.port, default: 8080, range: 0...65535)
        self.maxMessageBytes = try int("max-message-bytes", flag: nil, default: 4000, range: 1...1_000_000)
        self.readyMaxLagMs = Int64(try int("ready-max-lag-ms", flag: nil, default: 5000, range: 1...86_400_000))
        self.tokenLifetime = TimeInterval(try int("jwt-ttl-seconds", flag: nil, default: 7 * 24 * 3600, range: 60...31_536_000))
        self.bcryptCost = UInt8(try int("bcrypt-cost", flag: nil, default: 12, range: 4...16))
        self.maxBodyBytes = try int("max-body-bytes", flag: nil, default: 64 * 1024, range: 1024...16 * 1024 * 1024)
        self.sendsPerSecond = try int("rate-sends-per-second", flag: nil, default: 20, range: 1...1_000_000)
        self.sendBurst = try int("rate-send-burst", flag: nil, default: 40, range: 1...1_000_000)
        for kind in CommandLimits.Class.allCases where kind != .sends {
            commandRates[kind] = (
                try int("rate-\(kind.rawValue)-per-minute", flag: nil, default: kind.defaults.perMinute, range: 1...1_000_000),
                try int("rate-\(kind.rawValue)-burst", flag: nil, default: kind.defaults.burst, range: 1...1_000_000)
            )
        }
        commandRates[.sends] = (sendsPerSecond * 60, sendBurst)
        self.registrationsPerMinute = try int("rate-registrations-per-minute", flag: nil, default: 10, range: 1...1_000_000)
        self.loginsPerMinute = try int("rate-logins-per-minute", flag: nil, default: 30, range: 1...1_000_000)
        self.loginFailuresPerHour = try int("rate-login-failures-per-hour", flag: nil, default: 20, range: 1...1_000_000)
        self.loginFailureBurst = try int("rate-login-failure-burst", flag: nil, default: 5, range: 1...1_000_000)
        self.maxQueuedPasswordChecks = try int("max-queued-password-checks", flag: nil, default: 64, range: 1...100_000)
        self.trustedProxies = Set(
            (environment["PARLEY_TRUSTED_PROXIES"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty })
        self.wsQueueFrames = try int("ws-queue-frames", flag: nil, default: 1024, range: 8...1_000_000)
        self.wsIdleSeconds = try int("ws-idle-seconds", flag: nil, default: 120, range: 1...86_400)
        self.wsMaxConnectionsPerUser = try int("ws-max-connections-per-user", flag: nil, default: 32, range: 1...100_000)
        self.presenceTTLSeconds = try int("presence-ttl-seconds", flag: nil, default: 20, range: 4...3600)
        self.wsReplayMaxEvents = try int("ws-replay-max-events", flag: nil, default: 10_000, range: 1...1_000_000)
        self.wsReplayConcurrency = try int("ws-replay-concurrency", flag: nil, default: 4, range: 1...1000)
        self.wsReplaysPerMinute = try int("ws-replays-per-minute", flag: nil, default: 30, range: 1...1_000_000)
        self.wsReplayBurst = try int("ws-replay-burst", flag: nil, default: 10, range: 1...1_000_000)
        self.projectorLingerMs = try int("projector-linger-ms", flag: nil, default: 10, range: 0...1000)
        self.wsEcho = ["1", "true", "yes"].contains((environment["PARLEY_WS_ECHO"] ?? "").lowercased())
        do {
            let readModels = try ReadModelSettings(environment: environment)
            self.logPartitions = readModels.partitions
            self.namespace = readModels.namespace
            self.postgresSchema = readModels.postgresSchema
            self.mongoCollection = readModels.mongoCollection
            self.readModels = readModels
        } catch {
            throw Invalid(description: error.description)
        }
        do {
            self.stores = try StoreConfiguration(environment: environment)
        } catch let error as DriverError {
            throw Invalid(description: error.message)
        }
        if let flagRoles = flags.roles {
            var roles: Set<Role> = []
            for name in flagRoles.split(separator: ",") {
                guard let role = Role(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw Invalid(description: "--roles: unknown role '\(name)' (known: api, projectors, archiver)")
                }
                roles.insert(role)
            }
            guard !roles.isEmpty else { throw Invalid(description: "--roles names no role") }
            self.roles = roles
        }
    }
}
