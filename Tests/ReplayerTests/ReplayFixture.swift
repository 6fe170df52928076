import EventLog
import Events
import Foundation
import Logging
import NIOConcurrencyHelpers
import Projections
import TestSupport

/// The replay tests' fixture: the shared store fixture, with `parley-replay` run against
/// it as an operator would.
typealias ReplayFixture = StoreFixture

extension StoreFixture {
    /// The settings a server over this fixture would have.
    var environment: [String: String] {
        [
            "PARLEY_NAMESPACE": schema, "PARLEY_POSTGRES_SCHEMA": schema, "PARLEY_MONGO_COLLECTION": schema,
            "PARLEY_LOG_PARTITIONS": "\(partitions)", "PARLEY_MIGRATIONS_DIR": repositoryRoot.appendingPathComponent("migrations").path,
        ]
    }

    func replay(_ arguments: [String], environment extra: [String: String] = [:], timeout: Double = 180) async throws -> ProcessResult {
        try await runParley("parley-replay", arguments, environment: environment.merging(extra) { $1 }, timeout: timeout)
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
