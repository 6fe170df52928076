import EventLog
import Events
import Foundation
import Logging
import Projections

/// A log, a PostgreSQL schema and a MongoDB collection of a test's own on the shared
/// servers (the namespace, the schema and the collection share one unique name), the two
/// projectors over them, and the live runners a server's projectors role would run. The
/// one store fixture of the projection and replay tests.
public struct StoreFixture: Sendable {
    public let redis: RedisClient
    public let postgres: PostgresClient
    public let mongo: MongoClient
    public let log: EventLog
    /// The log's archive (`<schema>.log_archive`), empty until a test archives: what `parley-replay` reads too.
    public let archive: LogArchive
    public let partitions: Int
    /// The namespace, schema and collection name.
    public let schema: String
    public let metadata: MetadataProjector
    public let messages: MessagesProjector
    public let search: SearchProjector
    public let scheduler: PriorityScheduler
    public let lag = ProjectionLag()

    public init(_ prefix: String = "tfix", partitions: Int = 2, workers: Int = 2) async throws {
        self.partitions = partitions
        // 32: live runners hold connections in blocking reads while a test appends from several tasks; with 16 a loaded
        // machine (the cluster pass of CI) timed out waiting for one (5 s).
        redis = try TestStores.redis(maxConnections: 32)
        postgres = TestStores.postgres(maxConnections: 6)
        mongo = try TestStores.mongo()
        schema = TestStores.unique(prefix)
        archive = LogArchive(postgres: postgres, schema: schema)
        log = EventLog(redis: redis, partitions: partitions, namespace: schema, archive: archive)
        // The public tables are the template of every schema: make sure they are migrated.
        if let directory = Migrator.defaultDirectory() {
            _ = try await Migrator(directory: directory).migrate(postgres, logger: Logger(label: "test"))
        }
        metadata = MetadataProjector(postgres: postgres, schema: schema)
        messages = MessagesProjector(mongo: mongo, collection: schema)
        search = SearchProjector(postgres: postgres, schema: schema)
        scheduler = PriorityScheduler(workers: workers)
        try await metadata.prepare()
        try await messages.prepare()
        try await search.prepare()
        try await archive.prepare()
    }

    public var read: MetadataReadModel { MetadataReadModel(postgres: postgres, schema: schema) }
    public var history: MessagesReadModel { MessagesReadModel(mongo: mongo, collection: schema) }

    /// A live runner of `projector` as `consumer`, quick to notice new events.
    public func runner(_ projector: any Projector, consumer: String = "test-consumer", lease: Duration = PartitionLease.ttl)
        -> ProjectorRunner
    {
        var options = ProjectorRunner.Options()
        options.blockMs = 100
        options.lease = lease
        options.retryDelay = .milliseconds(5)
        return ProjectorRunner(
            projector, log: log, scheduler: scheduler, lag: lag, options: options, consumer: consumer, logger: Logger(label: "test"))
    }

    /// Runs the three live projectors (as a server's projectors role does) until cancelled.
    public func startLive(consumer: String = "live-test") -> Task<Void, any Error> {
        let runners = [runner(metadata, consumer: consumer), runner(messages, consumer: consumer), runner(search, consumer: consumer)]
        return Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for runner in runners { group.addTask { try await runner.run() } }
                try await group.waitForAll()
            }
        }
    }

    /// Waits until `projectors` (metadata and messages by default: what tests with runners of their own run) have applied
    /// everything in the log now.
    public func waitUntilProjected(_ projectors: [any Projector]? = nil, seconds: Double = 90) async throws {
        let head = try await log.head()
        for projector in projectors ?? [metadata, messages] {
            for partition in 0..<partitions where head.entryIDs[partition] != "0-0" {
                _ = try await eventually(seconds: seconds) {
                    let done = try await projector.checkpoint(partition: partition)
                    let end = head.entryIDs[partition]
                    guard !StreamID.less(done, end) else {
                        throw ProjectionError("\(projector.name) at \(done) in partition \(partition), the log at \(end)")
                    }
                    return done
                }
            }
        }
    }

    /// Runs the live projectors until the read models hold the whole log.
    public func project() async throws {
        let live = startLive()
        try await waitUntilProjected([metadata, messages, search])
        // A runner acknowledges a batch just after applying it: cancelled in between, it leaves the batch pending, and a
        // pending entry holds the archiver's trim back (seen on the cluster). Give the acknowledgements their moment.
        let head = try await log.head()
        _ = try? await eventually(seconds: 10) {
            for partition in 0..<partitions where head.entryIDs[partition] != "0-0" {
                for group in try await redis.xinfoGroups(log.keys.stream(partition)) where (group["pending"]?.int ?? 0) > 0 {
                    throw ProjectionError("group \(group["name"]?.string ?? "?") has entries pending in partition \(partition)")
                }
            }
            return true
        }
        live.cancel()
        _ = try? await live.value
    }

    /// Drops everything the fixture made (and the shadow, scratch and retired copies a
    /// rebuild leaves beside it), and closes the clients.
    public func cleanUp() async throws {
        // The schema, and every shadow, scratch and retired one named after it (`_shadow`, `_search_verify`, ...).
        for area in try await postgres.query(
            "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR starts_with(nspname, $1 || '_')", [schema])
        {
            try await postgres.query("DROP SCHEMA \(area.string("nspname")!) CASCADE")
        }
        try await TestStores.dropMessagesAreas(mongo, base: schema)
        try await redis.deleteKeys(matching: log.keys.everything)
        log.shutdown()
        await redis.shutdown()
        await postgres.shutdown()
        await mongo.shutdown()
    }
}
