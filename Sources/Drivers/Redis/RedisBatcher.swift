import Foundation

/// Sends commands from many concurrent callers as pipelines (group commit): whatever
/// arrives while a batch is on the wire goes out together in the next one, so a busy
/// server pays one round trip and one pair of syscalls per batch instead of per command.
///
/// Each writer is a thread of its own with a connection of its own: it sleeps on a
/// condition variable until work arrives, sends the batch, and resumes the callers
/// directly, so a command costs no hop through a task or a thread pool. A lone caller is
/// sent at once: batching adds no latency when the load is light.
///
/// The writers start with the first command (a log that only reads has none) and end
/// with `shutdown`, which the event log calls when its service stops.
///
/// `@unchecked Sendable`: `pending`, `started` and `stopped` are only touched with
/// `condition` held.
public final class RedisBatcher: @unchecked Sendable {
    private struct Job {
        let arguments: [String]
        let continuation: CheckedContinuation<RedisValue, any Error>
    }

    private let client: RedisClient
    private let maxBatch: Int
    private let writers: Int
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var started = false
    private var stopped = false

    /// - Parameters:
    ///   - writers: threads (and connections) sending batches concurrently.
    ///   - maxBatch: commands per pipeline at most.
    public init(client: RedisClient, writers: Int = 2, maxBatch: Int = 256) {
        self.client = client
        self.maxBatch = maxBatch
        self.writers = max(1, writers)
    }

    /// Starts the writer threads; with `condition` held, once.
    private func startWriters() {
        started = true
        for n in 0..<writers {
            let thread = Thread { [self] in self.writerLoop() }
            thread.name = "parley-redis-writer-\(n)"
            thread.start()
        }
    }

    /// Sends one command in the next batch and returns its reply (error replies included).
    public func send(_ arguments: [String]) async throws -> RedisValue {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            if stopped {
                condition.unlock()
                continuation.resume(throwing: DriverError(.redis, .closed, "the batcher was shut down"))
                return
            }
            if !started { startWriters() }
            pending.append(Job(arguments: arguments, continuation: continuation))
            condition.signal()
            condition.unlock()
        }
    }

    /// Runs a script through the batches (EVALSHA; loads it and resends on NOSCRIPT).
    public func run(_ script: RedisScript, keys: [String], arguments: [String]) async throws -> RedisValue {
        let sha = try await script.sha(loadingWith: client)
        let reply = try await send(["EVALSHA", sha, String(keys.count)] + keys + arguments)
        if case .error(let text) = reply, text.hasPrefix("NOSCRIPT") {
            script.forget()
            return try await run(script, keys: keys, arguments: arguments)
        }
        return reply
    }

    /// Stops the writers once the commands already queued are sent.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func writerLoop() {
        var connection: RedisConnection?
        let configuration = client.configuration
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if pending.isEmpty {
                condition.unlock()
                break
            }
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            condition.unlock()
            do {
                if connection?.isUsable != true {
                    connection?.close()
                    connection = try RedisConnection(
                        endpoint: client.endpoint, connectTimeoutMs: configuration.connectTimeout.milliseconds,
                        commandTimeoutMs: configuration.commandTimeout.milliseconds)
                }
                let replies = try connection!.pipeline(batch.map(\.arguments))
                for (job, reply) in zip(batch, replies) { job.continuation.resume(returning: reply) }
            } catch {
                for job in batch { job.continuation.resume(throwing: error) }
            }
        }
        connection?.close()
    }
}
