/// A pool of libpq connections to one PostgreSQL database.
public final class PostgresClient: Sendable {
    /// How to reach PostgreSQL and how long to wait for it; the pool is sized by `maxConnections`.
    public struct Configuration: Sendable {
        /// A libpq connection URL or conninfo string; what it sets (e.g. `connect_timeout`) wins over the values below.
        public var url: String
        /// The pool's size and its number of threads: at most this many statements run at once.
        public var maxConnections: Int
        /// How long a connect may take; libpq counts whole seconds, so it is rounded down, to at least 1 s.
        public var connectTimeout: Duration
        /// Sent as the session's `statement_timeout`: a longer statement is cancelled and thrown as `.timeout`.
        public var statementTimeout: Duration
        /// How long a caller waits for a free connection when all are leased, then gets `.timeout`.
        public var acquireTimeout: Duration

        /// The defaults suit a server; `StoreConfiguration(environment:)` sets the pool size and timeouts from the environment.
        public init(
            url: String, maxConnections: Int = 8, connectTimeout: Duration = .seconds(3),
            statementTimeout: Duration = .seconds(30), acquireTimeout: Duration = .seconds(10)
        ) {
            self.url = url
            self.maxConnections = maxConnections
            self.connectTimeout = connectTimeout
            self.statementTimeout = statementTimeout
            self.acquireTimeout = acquireTimeout
        }
    }

    /// The configuration it was made with; `Stores.check()` names its URL (password hidden) in errors.
    public let configuration: Configuration
    private let connections: BlockingConnections<PostgresConnection>

    /// Connects lazily: nothing is opened until the first statement, so a wrong URL shows up there (or in `ping()`).
    public init(_ configuration: Configuration) {
        let url = configuration.url
        let connectSeconds = max(1, configuration.connectTimeout.milliseconds / 1000)
        let statementMs = configuration.statementTimeout.milliseconds
        self.configuration = configuration
        self.connections = BlockingConnections(
            store: .postgres, maxConnections: configuration.maxConnections, acquireTimeout: configuration.acquireTimeout
        ) {
            try PostgresConnection(url: url, connectTimeoutSeconds: connectSeconds, statementTimeoutMs: statementMs)
        }
    }

    /// Lends a connection to `body`, which runs on one of this client's threads.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await connections.withConnection(body)
    }

    /// Runs `body` inside BEGIN ... COMMIT; any error thrown by `body` or by the COMMIT
    /// rolls the transaction back and is rethrown.
    public func withTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withConnection { connection in
            try connection.execute("BEGIN")
            do {
                let result = try body(connection)
                try connection.execute("COMMIT")
                return result
            } catch {
                if connection.isUsable { _ = try? connection.execute("ROLLBACK") }
                throw error
            }
        }
    }

    /// One parameterised statement on a pooled connection.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresBindable] = []) async throws -> PostgresRows {
        try await withConnection { try $0.query(sql, parameters) }
    }

    /// `SELECT 1`, for readiness checks and start-up validation.
    public func ping() async throws {
        try await query("SELECT 1")
    }

    /// Closes every connection and stops the client's threads.
    public func shutdown() async {
        await connections.shutdown()
    }
}
