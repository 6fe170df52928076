import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation
import Logging

/// `parley-bench rebuild`: how fast `parley-replay rebuild` re-projects a chat-shaped log,
/// per projection and for both, timing the real command (process start to exit) on a log
/// generated for the run.
struct RebuildBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rebuild", abstract: "parley-replay rebuild events/s per projection.")

    @Option(help: "Events in each generated log (repeat for several sizes).") var events: [Int] = [100_000]
    @Option(help: "Events per batch (parley-replay --batch).") var batch = 5000
    @Flag(help: "Skip the MongoDB projection (nx-27017 is slow).") var skipMessages = false
    @Flag(help: "Skip the run of both projections together.") var skipAll = false

    func run() async throws {
        let stores = try Stores(StoreConfiguration(environment: ProcessInfo.processInfo.environment))
        try await stores.check()
        let replay = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("parley-replay")
        print("| projection | events | seconds | events/s |")
        print("|---|---:|---:|---:|")
        for size in events {
            let name = "bench_rb_\(UInt32.random(in: 0...UInt32.max))"
            let log = EventLog(redis: stores.redis, partitions: 1, namespace: name)
            let generated = try await generateChatLog(log, redis: stores.redis, events: size)
            var environment = ProcessInfo.processInfo.environment
            environment.merge([
                "PARLEY_NAMESPACE": name, "PARLEY_POSTGRES_SCHEMA": name, "PARLEY_MONGO_COLLECTION": name, "PARLEY_LOG_PARTITIONS": "1",
            ]) { $1 }
            var runs = ["metadata"]
            if !skipMessages { runs.append("messages") }
            if !skipMessages && !skipAll { runs.append("all") }
            for projection in runs {
                let seconds = try await timeProcess(
                    replay, ["rebuild", "--projection", projection, "--batch", "\(batch)"], environment: environment)
                let label = projection == "all" ? "all (metadata, then messages)" : projection
                let counted = projection == "all" ? generated * 2 : generated
                print("| \(label) | \(generated) | \(String(format: "%.1f", seconds)) | \(Int(Double(counted) / seconds)) |")
            }
            try await stores.postgres.query("DROP SCHEMA IF EXISTS \(name) CASCADE")
            try await stores.mongo.collection(name).drop()
            try await stores.mongo.collection(name + "_checkpoints").drop()
            try await stores.redis.deleteKeys(matching: "\(name)*")
            log.shutdown()
        }
        await stores.shutdown()
    }

    /// Runs a command to its end (waiting without blocking a thread); its wall time in seconds.
    func timeProcess(_ executable: URL, _ arguments: [String], environment: [String: String]) async throws -> Double {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(
            "parley-bench-rebuild-\(UInt32.random(in: 0...UInt32.max)).log")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(at: output)
        }
        process.standardOutput = handle
        process.standardError = handle
        let start = ContinuousClock.now
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let elapsed = ContinuousClock.now - start
        guard process.terminationStatus == 0 else {
            throw ValidationError(
                "parley-replay \(arguments.joined(separator: " ")) failed: \((try? String(contentsOf: output, encoding: .utf8)) ?? "")")
        }
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
