import Foundation
import Logging

/// A pool of hiredis connections to one Redis server, or to each node of a Redis Cluster
/// (`Configuration.cluster`), where every command goes to the primary serving its key's
/// slot (`RedisCluster`). Commands are argv arrays (never formatted strings); each runs on
/// the client's own threads.
public final class RedisClient: Sendable {
    /// How to reach Redis and how long to wait for it; the pool is sized by `maxConnections`.
    public struct Configuration: Sendable {
        /// A `redis://[[user]:password@]host[:port][/db]` URL (see `RedisEndpoint`); `init` throws `.invalid` for any other.
        public var url: String
        /// The pool's size and its number of threads: a blocking read (`XREAD BLOCK`) holds one for its whole wait.
        public var maxConnections: Int
        /// How long a connect may take before it fails as `.unavailable`.
        public var connectTimeout: Duration
        /// How long one reply may take; longer throws `.timeout` and retires the connection. A blocking read waits its
        /// `BLOCK` time plus this.
        public var commandTimeout: Duration
        /// How long a caller waits for a free connection when all are leased, then gets `.timeout`.
        public var acquireTimeout: Duration
        /// Seed nodes (`host:port`) of a Redis Cluster; empty for one server at `url`. With a cluster, `url` gives only
        /// the credentials, and `maxConnections` is the size of each node's pool.
        public var cluster: [String] = []
        /// How long a command waits out a cluster that is failing over (a primary unreachable, `CLUSTERDOWN`) before its
        /// error is thrown.
        public var failoverWait: Duration = .seconds(10)
        /// Appends (the batcher's commands) are confirmed with `WAIT` by this many replicas before they are answered; 0
        /// does not wait.
        public var ackReplicas = 0
        /// How long `WAIT` may take; an append not confirmed by then is answered with a `NOREPLICAS` error.
        public var ackTimeout: Duration = .milliseconds(500)

        /// The defaults suit a server; `StoreConfiguration(environment:)` sets the pool size and timeouts from the environment.
        public init(
            url: String, maxConnections: Int = 16, connectTimeout: Duration = .seconds(3),
            commandTimeout: Duration = .seconds(5), acquireTimeout: Duration = .seconds(5), cluster: [String] = []
        ) {
            self.url = url
            self.maxConnections = maxConnections
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.acquireTimeout = acquireTimeout
            self.cluster = cluster
        }
    }

    /// The configuration it was made with; the subscriber reuses its timeouts and `Stores.check()` names its URL.
    public let configuration: Configuration
    let endpoint: RedisEndpoint
    private let connections: BlockingConnections<RedisConnection>?
    let cluster: RedisCluster?

    /// Parses the URL and the seed nodes (throws `.invalid` for a bad one) but connects lazily: a server that is down
    /// shows on first use.
    public init(_ configuration: Configuration) throws {
        let endpoint = try RedisEndpoint(url: configuration.url)
        let connectMs = configuration.connectTimeout.milliseconds
        let commandMs = configuration.commandTimeout.milliseconds
        self.configuration = configuration
        self.endpoint = endpoint
        if configuration.cluster.isEmpty {
            self.cluster = nil
            self.connections = BlockingConnections(
                store: .redis, maxConnections: configuration.maxConnections, acquireTimeout: configuration.acquireTimeout
            ) {
                try RedisConnection(endpoint: endpoint, connectTimeoutMs: connectMs, commandTimeoutMs: commandMs)
            }
        } else {
            self.cluster = try RedisCluster(seeds: configuration.cluster, configuration: configuration, credentials: endpoint)
            self.connections = nil
        }
    }

    /// Whether this client talks to a Redis Cluster: keys of one command (or one script) must then share a slot.
    public var isCluster: Bool { cluster != nil }

    /// Lends a connection to `body`, which runs on a thread of this client (it may block). With a cluster it is a
    /// connection to one primary: for commands of no key only (`routed(by:)` sends the others where they belong).
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        if let cluster { return try await cluster.run(on: try await cluster.serving(nil), body) }
        return try await connections!.withConnection(body)
    }

    /// Runs `body` on a connection to where `key` lives (the primary of its slot with a cluster, following redirections
    /// and waiting out a failover; see `RedisCluster`). `onlyReads` says that running it twice does no harm.
    public func routed(
        by key: String?, onlyReads: Bool = false, _ body: @escaping @Sendable (RedisConnection) throws -> RedisValue
    ) async throws -> RedisValue {
        if let cluster { return try await cluster.run(routingKey: key, retrySafe: onlyReads, body) }
        return try await connections!.withConnection(body)
    }

    /// Sends one command; a Redis error reply is thrown as `.server`.
    @discardableResult
    public func command(_ arguments: String...) async throws -> RedisValue {
        try await command(arguments)
    }

    /// Sends one command given as an argv array; a Redis error reply is thrown as `.server`.
    @discardableResult
    public func command(_ arguments: [String]) async throws -> RedisValue {
        try await routed(by: RedisSlot.routingKey(of: arguments), onlyReads: RedisSlot.onlyReads(arguments)) {
            try $0.command(arguments)
        }.orThrow()
    }

    /// Sends one command where `key` lives, whatever keys it names itself (`SCRIPT LOAD` for a script of that slot).
    @discardableResult
    public func command(_ arguments: [String], routedBy key: String?) async throws -> RedisValue {
        try await routed(by: key, onlyReads: RedisSlot.onlyReads(arguments)) { try $0.command(arguments) }.orThrow()
    }

    /// Sends a batch in one round trip (hiredis pipelining); replies come back in order,
    /// error replies included as `.error` values. With a cluster, one pipeline per node.
    public func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        if let cluster { return try await cluster.pipeline(commands) }
        return try await withConnection { try $0.pipeline(commands) }
    }

    /// PING, for readiness checks and start-up validation; with a cluster, also that every slot is served.
    public func ping() async throws {
        if let cluster {
            try await cluster.refresh()
            let info = try await command(["CLUSTER", "INFO"]).string ?? ""
            guard info.contains("cluster_state:ok") else {
                throw DriverError(.redis, .server, "CLUSTERDOWN the Redis Cluster is not serving every slot (cluster_state is not ok)")
            }
        }
        let reply = try await command("PING")
        guard reply.string == "PONG" else {
            throw DriverError(.redis, .invalid, "PING answered \(reply)")
        }
    }

    /// Where a connection of no key (pub/sub) may go: the server, or every known node of the cluster in turn.
    public func unkeyedEndpoints() -> [RedisEndpoint] {
        guard let cluster else { return [endpoint] }
        let nodes = cluster.knownNodes().compactMap { try? cluster.endpoint(of: $0) }
        return nodes.isEmpty ? [endpoint] : nodes
    }

    /// Closes every connection and stops the client's threads.
    public func shutdown() async {
        await connections?.shutdown()
        await cluster?.shutdown()
    }
}

extension RedisValue {
    /// Throws an error reply as `DriverError.server`; returns any other reply.
    public func orThrow() throws -> RedisValue {
        if case .error(let text) = self { throw DriverError(.redis, .server, text) }
        return self
    }
}

extension Duration {
    /// Whole milliseconds, for C APIs that take them.
    public var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

extension RedisClient {
    /// Every key matching a glob `pattern`, found with SCAN (never KEYS, which blocks Redis).
    /// With a cluster, every primary is scanned.
    public func keys(matching pattern: String) async throws -> [String] {
        let scan: @Sendable (RedisConnection) throws -> [String] = { connection in
            var cursor = "0"
            var keys: [String] = []
            repeat {
                let reply = try connection.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]).orThrow()
                guard let parts = reply.array, parts.count == 2 else { break }
                cursor = parts[0].string ?? "0"
                keys += (parts[1].array ?? []).compactMap(\.string)
            } while cursor != "0"
            return keys
        }
        guard let cluster else { return try await withConnection(scan) }
        var keys: [String] = []
        for node in try await cluster.primaries() { keys += try await cluster.run(on: node, scan) }
        return keys
    }

    /// Deletes every key matching `pattern`, 500 at a time (one `DEL` per key with a cluster, whose keys are in many
    /// slots); returns how many it found.
    @discardableResult
    public func deleteKeys(matching pattern: String) async throws -> Int {
        let keys = try await keys(matching: pattern)
        for chunk in stride(from: 0, to: keys.count, by: 500) {
            let part = keys[chunk..<min(chunk + 500, keys.count)]
            if isCluster {
                for reply in try await pipeline(part.map { ["DEL", $0] }) { _ = try reply.orThrow() }
            } else {
                try await command(["DEL"] + part)
            }
        }
        return keys.count
    }
}
