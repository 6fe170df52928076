import Drivers
import EventLog
import Events
import Foundation
import Logging
import Projections

/// What `parley-replay` works on, read from the same environment as `parley-server`
/// (CONTRACT section 1): the stores and `ReadModelSettings`, parsed by the same code.
struct ReplayConfiguration: Sendable {
    var stores: StoreConfiguration
    var readModels: ReadModelSettings
    var partitions: Int { readModels.partitions }
    var namespace: String { readModels.namespace }
    var postgresSchema: String { readModels.postgresSchema }
    var mongoCollection: String { readModels.mongoCollection }

    /// A setting that cannot be used, named in one line.
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    init(environment: [String: String]) throws {
        do {
            stores = try StoreConfiguration(environment: environment)
        } catch let error as DriverError {
            throw Invalid(description: error.message)
        }
        do {
            readModels = try ReadModelSettings(environment: environment)
        } catch {
            throw Invalid(description: error.description)
        }
    }
}

/// The open stores and the projectors of the live read models, plus the shadow and
/// scratch areas beside them (`<schema>_shadow`, `<schema>_verify`, `<schema>_search_shadow`, `<schema>_search_verify`,
/// `<collection>_v<n>`, `<collection>_verify`).
final class ReplayContext: Sendable {
    let configuration: ReplayConfiguration
    private let redis: RedisClient
    let postgres: PostgresClient
    let mongo: MongoClient
    let log: EventLog
    let logger: Logger

    /// Opens what `needs` names; a store that does not answer stops here with its URL.
    init(_ configuration: ReplayConfiguration, needs: Set<Store> = Set(Store.allCases), logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        redis = try RedisClient(configuration.stores.redis)
        postgres = PostgresClient(configuration.stores.postgres)
        mongo = try MongoClient(configuration.stores.mongo)
        log = EventLog(
            redis: redis, partitions: configuration.partitions, namespace: configuration.namespace,
            archive: configuration.readModels.archive(on: postgres), dedupe: configuration.readModels.dedupe, logger: logger)
        do {
            try await redis.ping()
            try await log.checkPartitionCount(claim: false)
            try await log.checkArchive(claim: false)
            try await log.reader.archive?.prepare()
            if needs.contains(.postgres) {
                try await postgres.ping()
                // The read models' tables come from the migrations, as at server start.
                guard let directory = Migrator.defaultDirectory() else {
                    throw ReplayConfiguration.Invalid(description: "cannot find the migrations/ folder (set PARLEY_MIGRATIONS_DIR)")
                }
                _ = try await Migrator(directory: directory).migrate(postgres, logger: logger)
            }
            if needs.contains(.mongo) { try await mongo.ping() }
        } catch {
            await shutdown()
            throw error
        }
    }

    enum Store: CaseIterable { case postgres, mongo }

    func shutdown() async {
        log.shutdown()
        await redis.shutdown()
        await postgres.shutdown()
        await mongo.shutdown()
    }

    /// Which read models a command works on.
    enum Projection: String, CaseIterable, Sendable {
        case metadata, messages, search
    }

    /// The live projector of `projection`, or one named like it writing to the area with `suffix`: the schema
    /// `<schema>_<suffix>`; for messages `<collection>_verify`, and for `shadow` the live collection's next version
    /// (`<collection>_v<n>`, which a swap points the readers at).
    func projector(_ projection: Projection, area suffix: String? = nil) async throws -> any ReplayableProjector {
        let priority: ProjectionPriority = suffix == nil ? .live : .rebuild
        switch projection {
        case .metadata:
            let live = configuration.postgresSchema
            // Every schema copies the tables the migrations made in `public`, as the server's does.
            return MetadataProjector(postgres: postgres, schema: suffix.map { "\(live)_\($0)" } ?? live, priority: priority)
        case .search:
            // Its own schema for a shadow or scratch copy: a metadata swap drops `<schema>_shadow` whole.
            let live = configuration.postgresSchema
            return SearchProjector(postgres: postgres, schema: suffix.map { "\(live)_search_\($0)" } ?? live, priority: priority)
        case .messages:
            let live = MessagesLocation(mongo: mongo, base: configuration.mongoCollection)
            guard let suffix else { return MessagesProjector(mongo: mongo, location: live, priority: priority) }
            let area = suffix == "shadow" ? try await live.nextArea() : "\(live.base)_\(suffix)"
            return MessagesProjector(mongo: mongo, location: MessagesLocation(mongo: mongo, fixed: area), priority: priority)
        }
    }

}
