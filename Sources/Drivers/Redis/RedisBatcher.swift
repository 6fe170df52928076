import Foundation

/// Sends commands from many concurrent callers as pipelines (group commit): whatever
/// arrives while a batch is on the wire goes out together in the next one, so a busy
/// server pays one round trip and one pair of syscalls per batch instead of per command.
///
/// Each writer is a thread of its own with a connection of its own: it sleeps on a
/// condition variable until work arrives, sends the batch, and resumes the callers
/// directly, so a command costs no hop through a task or a thread pool. A lone caller is
/// sent at once: batching adds no latency when the load is light. On a cluster each node
/// has its own queue and writers (a command goes to the node of its first key's slot), so
/// a node that is slow, stopped or waiting for its replica never holds up the others.
///
/// With `ackReplicas` > 0 each pipeline ends with `WAIT`: every command of the batch is
/// answered once that many replicas have it, or fails with `NOREPLICAS` (it may be in
/// Redis all the same; a send retried with its `clientMsgId` finds it). One `WAIT` covers
/// the whole batch, so durability costs one replica round trip per batch, not per command.
///
/// A command redirected by the cluster (`MOVED`, `ASK`, a failover under way), or not sent
/// because its node could not be reached, is sent again on its own through the client's
/// routing, which follows the redirection.
///
/// The writers start with the first command (a log that only reads has none) and end
/// with `shutdown`, which the event log calls when its service stops.
///
/// `@unchecked Sendable`: `pending`, `started` and `stopped` are only touched with
/// `condition` held.
public final class RedisBatcher: @unchecked Sendable {
    private struct Job {
        let arguments: [String]
        let key: String?
        let continuation: CheckedContinuation<RedisValue, any Error>
    }

    private let client: RedisClient
    private let maxBatch: Int
    private let writers: Int
    private let condition = NSCondition()
    /// Jobs by node (`""`: the single server); a node's writers take only its jobs.
    private var pending: [String: [Job]] = [:]
    /// Nodes whose writers run: bounded by the nodes the cluster ever had, `writers` threads each.
    private var started: Set<String> = []
    private var stopped = false

    /// - Parameters:
    ///   - writers: threads (and connections) sending batches concurrently.
    ///   - maxBatch: commands per pipeline at most.
    public init(client: RedisClient, writers: Int = 2, maxBatch: Int = 256) {
        self.client = client
        self.maxBatch = maxBatch
        self.writers = max(1, writers)
    }

    /// Starts the writer threads of `node`; with `condition` held, once per node.
    private func startWriters(for node: String) {
        started.insert(node)
        for n in 0..<writers {
            let thread = Thread { [self] in self.writerLoop(node) }
            thread.name = "parley-redis-writer-\(n)"
            thread.start()
        }
    }

    /// Sends one command in the next batch and returns its reply (error replies included).
    public func send(_ arguments: [String]) async throws -> RedisValue {
        try await withCheckedThrowingContinuation { continuation in
            let job = Job(arguments: arguments, key: RedisSlot.routingKey(of: arguments), continuation: continuation)
            // A slot whose owner is not known yet (a cluster's first command) goes the routed way.
            let node: String?
            if let cluster = client.cluster { node = cluster.nodeNow(job.key) } else { node = "" }
            guard let node else { return reroute(job) }
            condition.lock()
            if stopped {
                condition.unlock()
                continuation.resume(throwing: DriverError(.redis, .closed, "the batcher was shut down"))
                return
            }
            if !started.contains(node) { startWriters(for: node) }
            pending[node, default: []].append(job)
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Runs a script through the batches (EVALSHA; loads it into the node of its keys and resends on NOSCRIPT).
    public func run(_ script: RedisScript, keys: [String], arguments: [String]) async throws -> RedisValue {
        let sha = try await script.sha(loadingWith: client, forKey: keys.first)
        let reply = try await send(["EVALSHA", sha, String(keys.count)] + keys + arguments)
        if case .error(let text) = reply, text.hasPrefix("NOSCRIPT") {
            try await client.command(["SCRIPT", "LOAD", script.source], routedBy: keys.first)
            return try await send(["EVALSHA", sha, String(keys.count)] + keys + arguments)
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

    private func writerLoop(_ node: String) {
        // A writer only ever sends to its own node.
        var connection: RedisConnection?
        while true {
            condition.lock()
            while (pending[node] ?? []).isEmpty && !stopped { condition.wait() }
            guard let queued = pending[node], !queued.isEmpty else {
                condition.unlock()
                break
            }
            let batch = Array(queued.prefix(maxBatch))
            pending[node] = Array(queued.dropFirst(batch.count))
            condition.unlock()
            send(batch, to: node, connection: &connection)
        }
        connection?.close()
    }

    /// One pipeline to `node` ("" for the single server), with `WAIT` at its end when replicas must confirm.
    private func send(_ jobs: [Job], to node: String, connection open: inout RedisConnection?) {
        let configuration = client.configuration
        let connection: RedisConnection
        do {
            if let open, open.isUsable {
                connection = open
            } else {
                open?.close()
                let endpoint = try client.cluster?.endpoint(of: node) ?? client.endpoint
                connection = try RedisConnection(
                    endpoint: endpoint, connectTimeoutMs: configuration.connectTimeout.milliseconds,
                    commandTimeoutMs: configuration.commandTimeout.milliseconds)
                open = connection
            }
        } catch {
            // Nothing was sent: the routed way waits out a failover and finds the new primary.
            guard client.isCluster else { return fail(jobs, error) }
            return jobs.forEach(reroute)
        }
        let replicas = configuration.ackReplicas
        var commands = jobs.map(\.arguments)
        if replicas > 0 { commands.append(RedisConnection.waitArguments(replicas: replicas, within: configuration.ackTimeout)) }
        let replies: [RedisValue]
        do {
            replies = try connection.pipeline(commands)
        } catch {
            client.cluster?.refreshSoon()
            return fail(jobs, error)
        }
        let confirmed = replicas == 0 ? replicas : Int(replies.last?.int ?? 0)
        for (job, reply) in zip(jobs, replies) {
            if client.isCluster, RedisCluster.Redirection(reply) != nil {
                reroute(job)
            } else if confirmed < replicas, !isError(reply) {
                job.continuation.resume(throwing: DriverError.notConfirmed(confirmed, of: replicas, within: configuration.ackTimeout))
            } else {
                job.continuation.resume(returning: reply)
            }
        }
    }

    private func fail(_ jobs: [Job], _ error: any Error) {
        for job in jobs { job.continuation.resume(throwing: error) }
    }

    private func isError(_ reply: RedisValue) -> Bool {
        if case .error = reply { return true }
        return false
    }

    /// Sends `job` on its own through the client's routing (redirections followed, a failover waited out), then `WAIT`s.
    private func reroute(_ job: Job) {
        let client = self.client
        let replicas = client.configuration.ackReplicas
        let timeout = client.configuration.ackTimeout
        let arguments = job.arguments
        Task {
            do {
                let reply = try await client.routed(by: job.key) { connection in
                    let reply = try connection.command(arguments)
                    guard replicas > 0, RedisCluster.Redirection(reply) == nil else { return reply }
                    if case .error = reply { return reply }
                    try connection.confirm(replicas: replicas, within: timeout)
                    return reply
                }
                job.continuation.resume(returning: reply)
            } catch {
                job.continuation.resume(throwing: error)
            }
        }
    }
}

extension RedisConnection {
    /// The argv of `WAIT replicas timeout`, for pipelines.
    static func waitArguments(replicas: Int, within timeout: Duration) -> [String] {
        ["WAIT", String(replicas), String(timeout.milliseconds)]
    }

    /// Waits until `replicas` replicas have this connection's last write; fewer within `timeout` throws `NOREPLICAS`.
    func confirm(replicas: Int, within timeout: Duration) throws {
        let confirmed = Int(try command(Self.waitArguments(replicas: replicas, within: timeout)).orThrow().int ?? 0)
        if confirmed < replicas { throw DriverError.notConfirmed(confirmed, of: replicas, within: timeout) }
    }
}

extension DriverError {
    /// A write that fewer replicas than required confirmed in time: a `NOREPLICAS` refusal (HTTP 503).
    static func notConfirmed(_ confirmed: Int, of replicas: Int, within timeout: Duration) -> DriverError {
        DriverError(
            .redis, .server,
            "NOREPLICAS \(confirmed) of \(replicas) replica(s) confirmed the append within \(timeout.milliseconds) ms; it may be in "
                + "the log all the same (a send retried with its clientMsgId finds it)")
    }
}
