import ArgumentParser
import Drivers
import Foundation

/// `parley-bench drivers`: raw throughput of the three drivers from Swift, to compare with
/// the figures in STORES.md and to see what Parley's own layers cost on top.
struct DriversBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drivers", abstract: "Pipelined XADD/s, MongoDB bulk insert/s, PostgreSQL inserts/s in one transaction.")

    @Option(help: "Operations per figure.") var count = 100_000
    @Option(help: "Commands per pipeline / documents per bulk write.") var batch = 100
    @Option(help: "Documents for the MongoDB figure (nx-27017 is slow: keep it smaller).") var mongoCount = 10_000

    func run() async throws {
        let stores = try Stores(StoreConfiguration(environment: ProcessInfo.processInfo.environment))
        try await stores.check()
        print("| operation | count | batch | seconds | per second |")
        print("|---|---:|---:|---:|---:|")

        // Redis: XADD pipelined in batches.
        let stream = "bench:drivers:\(UUID().uuidString)"
        let payload = String(repeating: "x", count: 200)
        let redisSeconds = try await timed {
            var sent = 0
            while sent < count {
                let n = min(batch, count - sent)
                let commands = (0..<n).map { _ in RedisClient.xaddArguments(stream, fields: [("event", payload)]) }
                _ = try await stores.redis.pipeline(commands)
                sent += n
            }
        }
        row("Redis XADD pipelined (200-byte field)", count, batch, redisSeconds)
        try await stores.redis.command("DEL", stream)

        // MongoDB: unordered bulk inserts.
        let collection = stores.mongo.collection("bench_\(UInt32.random(in: 0...UInt32.max))")
        let mongoBatch = max(batch, 1000)
        let mongoSeconds = try await timed {
            var sent = 0
            while sent < mongoCount {
                let n = min(mongoBatch, mongoCount - sent)
                let documents: [BSONDocument] = (0..<n).map { i in
                    ["_id": .string("m\(sent + i)"), "roomId": "r1", "seq": .int64(Int64(sent + i)), "body": .string(payload)]
                }
                try await collection.insertMany(documents, ordered: false)
                sent += n
            }
        }
        row("MongoDB bulk insert, unordered (\(mongoServerName()))", mongoCount, mongoBatch, mongoSeconds)
        try await collection.drop()

        // PostgreSQL: prepared INSERTs inside one transaction.
        let table = "bench_\(UInt32.random(in: 0...UInt32.max))"
        try await stores.postgres.query("CREATE UNLOGGED TABLE \(table) (id bigint PRIMARY KEY, body text)")
        let n = count
        let pgSeconds = try await timed {
            try await stores.postgres.withTransaction { connection in
                for i in 0..<n { try connection.query("INSERT INTO \(table) (id, body) VALUES ($1, $2)", [i, payload]) }
            }
        }
        row("PostgreSQL INSERT, prepared, one transaction", count, count, pgSeconds)
        try await stores.postgres.query("DROP TABLE \(table)")
        await stores.shutdown()
    }

    private func timed(_ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private func row(_ name: String, _ count: Int, _ batch: Int, _ seconds: Double) {
        print("| \(name) | \(count) | \(batch) | \(String(format: "%.2f", seconds)) | \(Int(Double(count) / seconds)) |")
    }

    private func mongoServerName() -> String {
        ProcessInfo.processInfo.environment["PARLEY_MONGO_SERVER_NAME"] ?? "nx-27017"
    }
}
