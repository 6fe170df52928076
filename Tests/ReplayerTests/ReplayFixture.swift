import EventLog
import Events
import Foundation
import Logging
import NIOConcurrencyHelpers
import Projections
import TestSupport

/// A log, a PostgreSQL schema and a MongoDB collection of their own on the shared servers,
/// the live projectors over them, and `parley-replay` run against them as an operator would.
struct ReplayFixture {
    let redis: RedisClient
    let postgres: PostgresClient
    let mongo: MongoClient
    let log: EventLog
    let partitions: Int
    let schema: String
    let metadata: MetadataProjector
    let messages: MessagesProjector
    let scheduler = PriorityScheduler(workers: 2)

    init(partitions: Int = 2) async throws {
        self.partitions = partitions
        redis = try TestStores.redis(maxConnections: 16)
        postgres = TestStores.postgres(maxConnections: 6)
        mongo = try TestStores.mongo()
        schema = TestStores.unique("trep")
        log = EventLog(redis: redis, partitions: partitions, namespace: schema)
        if let directory = Migrator.defaultDirectory() {
            try await Migrator(directory: directory).migrate(postgres, logger: Logger(label: "test"))
        }
        metadata = MetadataProjector(postgres: postgres, schema: schema)
        messages = MessagesProjector(mongo: mongo, collection: schema)
        try await metadata.prepare()
        try await messages.prepare()
    }

    /// The settings a server over this fixture would have.
    var environment: [String: String] {
        [
            "PARLEY_NAMESPACE": schema, "PARLEY_POSTGRES_SCHEMA": schema, "PARLEY_MONGO_COLLECTION": schema,
            "PARLEY_LOG_PARTITIONS": "\(partitions)", "PARLEY_MIGRATIONS_DIR": repositoryRoot.appendingPathComponent("migrations").path,
        ]
    }

    func replay(_ arguments: [String], timeout: Double = 180) async throws -> ProcessResult {
        try await runParley("parley-replay", arguments, environment: environment, timeout: timeout)
    }

    /// Runs both live projectors (as a server's projectors role does) until cancelled.
    func startLive(consumer: String = "live-test") -> Task<Void, any Error> {
        var options = ProjectorRunner.Options()
        options.blockMs = 100
        let projectors: [any Projector] = [metadata, messages]
        let runners = projectors.map { projector in
            ProjectorRunner(
                projector, log: log, scheduler: scheduler, lag: ProjectionLag(), options: options, consumer: consumer,
                logger: Logger(label: "test"))
        }
        return Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for runner in runners { group.addTask { try await runner.run() } }
                try await group.waitForAll()
            }
        }
    }

    /// Waits until both live projectors have applied everything in the log now.
    func waitUntilProjected(seconds: Double = 90) async throws {
        let head = try await log.head()
        for projector in [metadata, messages] as [any Projector] {
            for partition in 0..<partitions where head.entryIDs[partition] != "0-0" {
                _ = try await eventually(seconds: seconds) {
                    let done = try await projector.checkpoint(partition: partition)
                    if StreamID.less(done, head.entryIDs[partition]) { throw ProjectionError("\(projector.name) at \(done)") }
                    return done
                }
            }
        }
    }

    /// Runs the live projectors until the read models hold the whole log.
    func project() async throws {
        let live = startLive()
        try await waitUntilProjected()
        live.cancel()
        _ = try? await live.value
    }

    /// `count` messages in `club`, sent by ada and bea from `tasks` concurrent senders.
    func sendMany(_ count: Int, ids: [String: String], tasks: Int = 8, prefix: String = "bulk") async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for i in stride(from: t, to: count, by: tasks) {
                        try await log.execute(
                            .send(roomId: "club", messageId: "\(prefix)-\(i)", body: "message \(i)", clientMsgId: nil, replyTo: nil),
                            actor: i % 2 == 0 ? ids["ada"]! : ids["bea"]!)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func cleanUp() async throws {
        for suffix in ["", "_shadow", "_verify"] {
            try await postgres.query("DROP SCHEMA IF EXISTS \(schema)\(suffix) CASCADE")
            try await mongo.collection(schema + suffix).drop()
            try await mongo.collection(schema + suffix + "_checkpoints").drop()
        }
        for retired in try await postgres.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", [schema + "_retired_%"]) {
            try await postgres.query("DROP SCHEMA \(retired.string("nspname")!) CASCADE")
        }
        try await redis.deleteKeys(matching: "\(schema)*")
        log.shutdown()
        await redis.shutdown()
        await postgres.shutdown()
        await mongo.shutdown()
    }
}

/// A `parley-replay` process a test can interrupt: its standard error is collected as it
/// comes, so the test can wait for a progress line and then send SIGINT.
final class RunningReplay: Sendable {
    let process: Process
    private let errors = NIOLockedValueBox("")
    private let outputs = NIOLockedValueBox("")

    init(_ arguments: [String], environment: [String: String]) throws {
        process = Process()
        process.executableURL = repositoryRoot.appendingPathComponent(".build/debug/parley-replay")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let err = Pipe()
        let out = Pipe()
        process.standardError = err
        process.standardOutput = out
        let errors = self.errors
        let outputs = self.outputs
        err.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            errors.withLockedValue { $0 += text }
        }
        out.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            outputs.withLockedValue { $0 += text }
        }
        try process.run()
    }

    var stderr: String { errors.withLockedValue { $0 } }
    var stdout: String { outputs.withLockedValue { $0 } }

    /// Waits (without blocking a thread) until standard error contains `text`.
    func waitFor(_ text: String, seconds: Double = 60) async throws {
        _ = try await eventually(seconds: seconds) {
            guard self.stderr.contains(text) else { throw ProjectionError("no \(text) yet in: \(self.stderr)") }
            return true
        }
    }

    func exitStatus(seconds: Double = 60) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(50))  // the last output
        return process.terminationStatus
    }
}
