import EventLog
import Events
import Foundation
import Logging
import TestSupport

@testable import Projections

/// A log, a PostgreSQL schema and a MongoDB collection of their own on the shared servers.
struct ProjectionFixture {
    let redis: RedisClient
    let postgres: PostgresClient
    let mongo: MongoClient
    let log: EventLog
    let schema: String
    let metadata: MetadataProjector
    let messages: MessagesProjector
    let scheduler: PriorityScheduler
    let lag = ProjectionLag()

    init(partitions: Int = 2, workers: Int = 2) async throws {
        redis = try TestStores.redis(maxConnections: 16)
        postgres = TestStores.postgres(maxConnections: 6)
        mongo = try TestStores.mongo()
        log = EventLog(redis: redis, partitions: partitions, namespace: TestStores.unique("tproj"))
        schema = TestStores.unique("tproj")
        // The public tables are the template of every schema: make sure they are migrated.
        if let directory = Migrator.defaultDirectory() {
            try await Migrator(directory: directory).migrate(postgres, logger: Logger(label: "test"))
        }
        metadata = MetadataProjector(postgres: postgres, schema: schema)
        messages = MessagesProjector(mongo: mongo, collection: schema)
        scheduler = PriorityScheduler(workers: workers)
        try await metadata.prepare()
        try await messages.prepare()
    }

    var read: MetadataReadModel { MetadataReadModel(postgres: postgres, schema: schema) }
    var history: MessagesReadModel { MessagesReadModel(mongo: mongo, collection: schema) }

    func runner(_ projector: any Projector, consumer: String = "test-consumer", lease: Duration = PartitionLease.ttl) -> ProjectorRunner {
        var options = ProjectorRunner.Options()
        options.blockMs = 100
        options.lease = lease
        options.retryDelay = .milliseconds(5)
        return ProjectorRunner(
            projector, log: log, scheduler: scheduler, lag: lag, options: options, consumer: consumer, logger: Logger(label: "test"))
    }

    /// Runs both projectors live until they have applied everything in the log now.
    func project() async throws {
        let runners = [runner(metadata), runner(messages)]
        let task = Task {
            try await withThrowingTaskGroup(of: Void.self) { g in
                for r in runners { g.addTask { try await r.run() } }
                try await g.waitForAll()
            }
        }
        try await waitUntilCaughtUp(metadata)
        try await waitUntilCaughtUp(messages)
        task.cancel()
        _ = try? await task.value
    }

    func waitUntilCaughtUp(_ projector: any Projector, seconds: Double = 90) async throws {
        let head = try await log.head()
        let deadline = Date().addingTimeInterval(seconds)
        for partition in 0..<log.partitioning.count {
            while true {
                let done = try await projector.checkpoint(partition: partition)
                if !StreamID.less(done, head.entryIDs[partition]) { break }
                if Date() > deadline {
                    throw ProjectionError("\(projector.name) stuck at \(done) in partition \(partition), head \(head.entryIDs[partition])")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Every row of the schema and every document of the collection, for comparisons.
    func snapshot() async throws -> (rows: [String], documents: [BSONDocument]) {
        var rows: [String] = []
        for table in ["users", "rooms", "room_members"] {
            for row in try await postgres.query("SELECT * FROM \(schema).\(table) ORDER BY 1, 2") {
                rows.append(table + ": " + zip(row.columns, row.values).map { "\($0)=\($1 ?? "NULL")" }.joined(separator: " "))
            }
        }
        let documents = try await messages.collection.find(sort: ["_id": 1])
        return (rows, documents)
    }

    func cleanUp() async throws {
        try await postgres.query("DROP SCHEMA \(schema) CASCADE")
        try await messages.collection.drop()
        try await mongo.collection(schema + "_checkpoints").drop()
        try await redis.deleteKeys(matching: "\(log.keys.namespace)*")
        log.shutdown()
        await redis.shutdown()
        await postgres.shutdown()
        await mongo.shutdown()
    }

    /// The scripted chat of `EventLog.scriptedChat()`; returns the user ids by name.
    func workload() async throws -> [String: String] { try await log.scriptedChat() }
}
