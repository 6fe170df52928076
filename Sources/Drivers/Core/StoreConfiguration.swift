import Foundation
import ServiceLifecycle

/// Where the three stores are and how Parley talks to them: one `Sendable` value read from
/// the environment in one place (`init(environment:)`), with defaults that match
/// `scripts/services`.
public struct StoreConfiguration: Sendable {
    /// Redis: the event log and everything else of Parley's kept there (only `EventLog` sends it commands).
    public var redis: RedisClient.Configuration
    /// MongoDB: the `messages` read model (history), written only by `MessagesProjector`.
    public var mongo: MongoClient.Configuration
    /// PostgreSQL: the metadata read model (users, rooms, members) and `schema_migrations`.
    public var postgres: PostgresClient.Configuration
    /// How long `Stores.check` keeps trying a store that does not answer yet (refused or timed out) before the process gives
    /// up: a server started together with its stores waits for them instead of exiting. An answer that is an error (a wrong
    /// password, an unknown role) stops it at once. `PARLEY_STORE_START_WAIT_MS`, 5 s by default; 0 tries once.
    public var startWait: Duration = .seconds(5)

    /// The Redis of `scripts/services`, database 0: used when `PARLEY_REDIS_URL` is not set.
    public static let defaultRedisURL = "redis://127.0.0.1:6379/0"
    /// The MongoDB of `scripts/services`, database `parley`: used when `PARLEY_MONGO_URI` is not set.
    public static let defaultMongoURI = "mongodb://127.0.0.1:27017/parley"
    /// The PostgreSQL of `scripts/services` (user `postgres`, no password): used when `PARLEY_POSTGRES_URL` is not set.
    public static let defaultPostgresURL = "postgresql://postgres@127.0.0.1:5432/parley"

    /// Every argument defaults to the local `scripts/services` store with the client's default pool size and timeouts;
    /// `init(environment:)` is what the executables use.
    public init(
        redis: RedisClient.Configuration = .init(url: defaultRedisURL),
        mongo: MongoClient.Configuration = .init(uri: defaultMongoURI),
        postgres: PostgresClient.Configuration = .init(url: defaultPostgresURL)
    ) {
        self.redis = redis
        self.mongo = mongo
        self.postgres = postgres
    }

    /// Reads `PARLEY_REDIS_URL`, `PARLEY_MONGO_URI`, `PARLEY_POSTGRES_URL`, the pool sizes
    /// `PARLEY_{REDIS,MONGO,POSTGRES}_POOL` and `PARLEY_STORE_TIMEOUT_MS` (connect and
    /// acquire timeouts), `PARLEY_STORE_START_WAIT_MS`; `PARLEY_REDIS_CLUSTER` (seed nodes, `host:port,…`: Redis is then a
    /// cluster, `PARLEY_REDIS_URL` giving only its credentials), `PARLEY_ACK_REPLICAS` and `PARLEY_ACK_TIMEOUT_MS` (the
    /// `WAIT` of every append). A value that is not a number is an error naming the variable.
    public init(environment: [String: String]) throws {
        func number(_ name: String, _ fallback: Int, least: Int = 1) throws -> Int {
            guard let text = environment[name], !text.isEmpty else { return fallback }
            guard let value = Int(text), value >= least else {
                throw DriverError(.redis, .invalid, "\(name)=\(text) is not a positive number")
            }
            return value
        }
        let timeout = Duration.milliseconds(try number("PARLEY_STORE_TIMEOUT_MS", 3000))
        self.init(
            redis: .init(
                url: environment["PARLEY_REDIS_URL"] ?? Self.defaultRedisURL,
                maxConnections: try number("PARLEY_REDIS_POOL", 32), connectTimeout: timeout,
                acquireTimeout: timeout * 2),
            mongo: .init(
                uri: environment["PARLEY_MONGO_URI"] ?? Self.defaultMongoURI,
                maxConnections: try number("PARLEY_MONGO_POOL", 8), connectTimeout: timeout,
                acquireTimeout: timeout * 3),
            postgres: .init(
                url: environment["PARLEY_POSTGRES_URL"] ?? Self.defaultPostgresURL,
                maxConnections: try number("PARLEY_POSTGRES_POOL", 8), connectTimeout: timeout,
                acquireTimeout: timeout * 3))
        startWait = .milliseconds(try number("PARLEY_STORE_START_WAIT_MS", 5000, least: 0))
        redis.cluster = (environment["PARLEY_REDIS_CLUSTER"] ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        redis.ackReplicas = try number("PARLEY_ACK_REPLICAS", 0, least: 0)
        redis.ackTimeout = .milliseconds(try number("PARLEY_ACK_TIMEOUT_MS", 500))
    }
}

/// The three store clients of one process, opened together and checked together.
public final class Stores: Sendable {
    /// The event log's store; only `EventLog` sends it commands (everything else reaches Redis through EventLog's types).
    public let redis: RedisClient
    /// The store of the `messages` read model (history pages), written only by `MessagesProjector`.
    public let mongo: MongoClient
    /// The store of the metadata read model (users, rooms, members), written only by `MetadataProjector`.
    public let postgres: PostgresClient

    /// Creates the three clients without connecting (connections open on first use): it throws only for a Redis or MongoDB
    /// URL that does not parse. Call `check()` to learn whether the stores answer.
    public init(_ configuration: StoreConfiguration) throws {
        self.redis = try RedisClient(configuration.redis)
        self.mongo = try MongoClient(configuration.mongo)
        self.postgres = PostgresClient(configuration.postgres)
    }

    /// Pings each store; the first failure is thrown with the store's URL (password hidden).
    /// A store that is not reachable yet (a transient error) is tried again until `waiting` has passed since the call.
    public func check(waiting: Duration = .zero) async throws {
        let deadline = ContinuousClock.now + waiting
        func untilAnswered(_ ping: () async throws -> Void) async throws {
            while true {
                do {
                    return try await ping()
                } catch let error as DriverError where error.isTransient && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
        }
        do { try await untilAnswered(redis.ping) } catch let error as DriverError {
            let configuration = redis.configuration
            let place = configuration.cluster.isEmpty ? redactingPassword(configuration.url) : "the Redis Cluster \(configuration.cluster)"
            throw DriverError(.redis, error.code, "\(place): \(error.message)")
        }
        do { try await untilAnswered(postgres.ping) } catch let error as DriverError {
            throw DriverError(
                .postgres, error.code, "\(redactingPassword(postgres.configuration.url)): \(error.message)", sqlState: error.sqlState)
        }
        do { try await untilAnswered(mongo.ping) } catch let error as DriverError {
            throw DriverError(.mongo, error.code, "\(redactingPassword(mongo.configuration.uri)): \(error.message)")
        }
    }

    /// Closes all three clients' connections and threads; `run()` does it at graceful shutdown, tools when they are done.
    public func shutdown() async {
        await redis.shutdown()
        await mongo.shutdown()
        await postgres.shutdown()
    }
}

extension Stores: Service {
    /// Keeps the store clients open while the service group runs; at graceful shutdown,
    /// after the services that use them have stopped (a group stops its services in
    /// reverse order, so this one goes first in the list), closes their connections and
    /// threads.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}
