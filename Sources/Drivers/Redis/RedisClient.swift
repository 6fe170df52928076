import Foundation
import Logging

/// A pool of hiredis connections to one Redis server. Commands are argv arrays (never
/// formatted strings); each runs on the client's own threads.
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

        /// The defaults suit a server; `StoreConfiguration(environment:)` sets the pool size and timeouts from the environment.
        public init(
            url: String, maxConnections: Int = 16, connectTimeout: Duration = .seconds(3),
            commandTimeout: Duration = .seconds(5), acquireTimeout: Duration = .seconds(5)
        ) {
            self.url = url
            self.maxConnections = maxConnections
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.acquireTimeout = acquireTimeout
        }
    }

    /// The configuration it was made with; the subscriber reuses its timeouts and `Stores.check()` names its URL.
    public let configuration: Configuration
    let endpoint: RedisEndpoint
    private let connections: BlockingConnections<RedisConnection>

    /// Parses the URL (throws `.invalid` for a bad one) but connects lazily: a server that is down shows on first use.
    public init(_ configuration: Configuration) throws {
        let endpoint = try RedisEndpoint(url: configuration.url)
        let connectMs = configuration.connectTimeout.milliseconds
        let commandMs = configuration.commandTimeout.milliseconds
        self.configuration = configuration
        self.endpoint = endpoint
        self.connections = BlockingConnections(
            store: .redis, maxConnections: configuration.maxConnections, acquireTimeout: configuration.acquireTimeout
        ) {
            try RedisConnection(endpoint: endpoint, connectTimeoutMs: connectMs, commandTimeoutMs: commandMs)
        }
    }

    /// Lends a connection to `body`, which runs on a thread of this client (it may block).
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await connections.withConnection(body)
    }

    /// Sends one command; a Redis error reply is thrown as `.server`.
    @discardableResult
    public func command(_ arguments: String...) async throws -> RedisValue {
        try await command(arguments)
    }

    /// Sends one command given as an argv array; a Redis error reply is thrown as `.server`.
    @discardableResult
    public func command(_ arguments: [String]) async throws -> RedisValue {
        try await withConnection { try $0.command(arguments) }.orThrow()
    }

    /// Sends a batch in one round trip (hiredis pipelining); replies come back in order,
    /// error replies included as `.error` values.
    public func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await withConnection { try $0.pipeline(commands) }
    }

    /// PING, for readiness checks and start-up validation.
    public func ping() async throws {
        let reply = try await command("PING")
        guard reply.string == "PONG" else {
            throw DriverError(.redis, .invalid, "PING answered \(reply)")
        }
    }

    /// Closes every connection and stops the client's threads.
    public func shutdown() async {
        await connections.shutdown()
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
    public func keys(matching pattern: String) async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        repeat {
            let reply = try await command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"])
            guard let parts = reply.array, parts.count == 2 else { break }
            cursor = parts[0].string ?? "0"
            keys += (parts[1].array ?? []).compactMap(\.string)
        } while cursor != "0"
        return keys
    }

    /// Deletes every key matching `pattern`, 500 at a time; returns how many it found.
    @discardableResult
    public func deleteKeys(matching pattern: String) async throws -> Int {
        let keys = try await keys(matching: pattern)
        for chunk in stride(from: 0, to: keys.count, by: 500) {
            try await command(["DEL"] + keys[chunk..<min(chunk + 500, keys.count)])
        }
        return keys.count
    }
}
