import CMongoc
import Foundation
import NIOConcurrencyHelpers

private let mongocInitialized: Bool = {
    // Before `mongoc_init`, which logs its own warnings: libmongoc's performance counters
    // live in a shared-memory segment per process (for `mongoc-stat`), which a killed
    // process leaves behind in /dev/shm and which Parley never reads; when one cannot be
    // made, init warns on stderr ("Falling back to malloc for counters", seen in tests).
    // A libmongoc built to initialise itself when loaded (Debian's) has read the variable
    // before this runs: `scripts/lib.sh` exports it for every process the scripts start.
    setenv("MONGOC_DISABLE_SHM", "1", 0)
    parley_mongoc_quiet_logs()
    mongoc_init()
    return true
}()

/// A `mongoc_client_pool` to one MongoDB deployment (or a server speaking its protocol).
/// Every operation pops a client on the driver's own threads, so a slow server never
/// blocks an event loop or the cooperative pool; a semaphore bounds the callers to the
/// pool's size, so that `mongoc_client_pool_pop` never waits inside a thread.
///
/// `@unchecked Sendable`: `mongoc_client_pool_t` is libmongoc's thread-safe type, and the
/// `mongoc_uri_t` is only read after `init`.
public final class MongoClient: @unchecked Sendable {
    /// How to reach MongoDB and how long to wait for it; options written in the URI win over these timeouts.
    public struct Configuration: Sendable {
        /// A `mongodb://` URI: its path names the database (`parley` when none); `init` throws `.invalid` for a bad one.
        public var uri: String
        /// The size of libmongoc's client pool and of the driver's thread pool: at most this many operations run at once.
        public var maxConnections: Int
        /// The server selection and connect timeout (`serverSelectionTimeoutMS`, `connectTimeoutMS`) unless the URI sets them.
        public var connectTimeout: Duration
        /// The socket timeout (`socketTimeoutMS`) unless the URI sets it: an operation waiting longer for a reply fails.
        public var operationTimeout: Duration
        /// How long a caller waits for one of the `maxConnections` slots when all are taken, then gets `.timeout`.
        public var acquireTimeout: Duration

        /// The defaults suit a server; `StoreConfiguration(environment:)` sets the pool size and timeouts from the environment.
        public init(
            uri: String, maxConnections: Int = 8, connectTimeout: Duration = .seconds(3),
            operationTimeout: Duration = .seconds(30), acquireTimeout: Duration = .seconds(10)
        ) {
            self.uri = uri
            self.maxConnections = maxConnections
            self.connectTimeout = connectTimeout
            self.operationTimeout = operationTimeout
            self.acquireTimeout = acquireTimeout
        }
    }

    /// The database named in the URI (`parley` when it names none).
    public let databaseName: String
    /// The configuration it was made with; `Stores.check()` names its URI (password hidden) in errors.
    public let configuration: Configuration
    private let pool: OpaquePointer
    private let uri: OpaquePointer
    private let executor: BlockingExecutor
    private let permits: AsyncSemaphore

    /// Parses the URI and creates the pool (a failure of either throws `.invalid`) but connects lazily: a server that is down
    /// shows on first use.
    public init(_ configuration: Configuration) throws {
        _ = mongocInitialized
        var error = bson_error_t()
        guard let uri = mongoc_uri_new_with_error(configuration.uri, &error) else {
            throw DriverError(.mongo, .invalid, "bad MongoDB URI \(redactingPassword(configuration.uri)): \(error.text)")
        }
        // Bounded waits unless the URI says otherwise: a stopped server is an error in
        // seconds, not a hang.
        let connectMs = Int32(configuration.connectTimeout.milliseconds)
        if !mongoc_uri_has_option(uri, "serverSelectionTimeoutMS") {
            mongoc_uri_set_option_as_int32(uri, "serverSelectionTimeoutMS", connectMs)
        }
        if !mongoc_uri_has_option(uri, "connectTimeoutMS") {
            mongoc_uri_set_option_as_int32(uri, "connectTimeoutMS", connectMs)
        }
        if !mongoc_uri_has_option(uri, "socketTimeoutMS") {
            mongoc_uri_set_option_as_int32(uri, "socketTimeoutMS", Int32(configuration.operationTimeout.milliseconds))
        }
        guard let pool = mongoc_client_pool_new_with_error(uri, &error) else {
            mongoc_uri_destroy(uri)
            throw DriverError(.mongo, .invalid, "cannot create a client pool: \(error.text)")
        }
        mongoc_client_pool_set_error_api(pool, 2)
        mongoc_client_pool_max_size(pool, UInt32(configuration.maxConnections))
        self.uri = uri
        self.pool = pool
        self.configuration = configuration
        if let name = mongoc_uri_get_database(uri) { self.databaseName = String(cString: name) } else { self.databaseName = "parley" }
        self.executor = BlockingExecutor(threads: configuration.maxConnections, store: .mongo)
        self.permits = AsyncSemaphore(permits: configuration.maxConnections)
    }

    deinit {
        mongoc_client_pool_destroy(pool)
        mongoc_uri_destroy(uri)
    }

    /// Lends a `mongoc_client_t` to `body` on one of the driver's threads.
    func withClient<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        try await permits.acquire(timeout: configuration.acquireTimeout, store: .mongo)
        defer { permits.release() }
        return try await executor.run {
            let client = mongoc_client_pool_pop(self.pool)!
            defer { mongoc_client_pool_push(self.pool, client) }
            return try body(client)
        }
    }

    /// A collection of the URI's database.
    public func collection(_ name: String) -> MongoCollection {
        MongoCollection(client: self, name: name)
    }

    /// Runs a database command (e.g. `["ping": 1]`) and returns the server's reply.
    @discardableResult
    public func command(_ command: BSONDocument) async throws -> BSONDocument {
        let database = databaseName
        return try await withClient { client in
            try command.withBSON { commandPointer in
                try withReply { reply, error in
                    mongoc_client_command_simple(client, database, commandPointer, nil, reply, error)
                }
            }
        }
    }

    /// `ping`, for readiness checks and start-up validation.
    public func ping() async throws {
        try await command(["ping": 1])
    }

    /// Stops the driver's threads. The pool itself is freed with the client.
    public func shutdown() async {
        await executor.shutdown()
    }
}

/// Runs a libmongoc call that fills a reply document and an error, and turns a failure
/// into a `DriverError` (duplicate keys as `.duplicateKey`).
func withReply(_ call: (OpaquePointer, UnsafeMutablePointer<bson_error_t>) -> Bool) throws -> BSONDocument {
    let reply = parley_bson_reply_new()!
    defer { parley_bson_reply_free(reply) }
    var error = bson_error_t()
    let ok = call(reply, &error)
    let document = BSONDocument(copying: reply)
    if !ok { throw MongoErrors.from(error, reply: document) }
    return document
}

enum MongoErrors {
    static func from(_ error: bson_error_t, reply: BSONDocument? = nil) -> DriverError {
        let code = Int(error.code)
        let text = error.text
        let writeErrorCode = reply?["writeErrors"]?.arrayValue?.first?.documentValue?["code"]?.int64Value
        if code == 11000 || code == 11001 || writeErrorCode == 11000 {
            return DriverError(.mongo, .duplicateKey, text, serverCode: 11000)
        }
        // Server selection (domain 13) and stream (domain 2) errors: the server is unreachable.
        if error.domain == 13 || error.domain == 2 || text.contains("No suitable servers") {
            return DriverError(.mongo, .unavailable, text, serverCode: code)
        }
        if text.contains("timed out") || text.contains("Timed out") {
            return DriverError(.mongo, .timeout, text, serverCode: code)
        }
        return DriverError(.mongo, .server, text, serverCode: code)
    }
}

extension bson_error_t {
    var text: String {
        withUnsafeBytes(of: message) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}

/// A counting semaphore for async callers, with a timeout: the MongoDB client's connection permits, the hub's
/// concurrent replays.
public final class AsyncSemaphore: Sendable {
    private struct State {
        var permits: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }
    private let state: NIOLockedValueBox<State>

    /// `permits` holders at once (at least 1).
    public init(permits: Int) {
        state = NIOLockedValueBox(State(permits: max(1, permits)))
    }

    /// Waits for a permit; after `timeout`, throws a `.timeout` `DriverError` of `store` (transient: try again later).
    public func acquire(timeout: Duration, store: DriverError.Store) async throws {
        let id: UInt64? = state.withLockedValue { state in
            if state.permits > 0 {
                state.permits -= 1
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.expire(id, error: DriverError(store, .timeout, "no free connection within \(timeout)"))
        }
        defer { timer.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            // Re-check under the lock: a release may have come since we decided to wait.
            let free = state.withLockedValue { state -> Bool in
                if state.permits > 0 {
                    state.permits -= 1
                    return true
                }
                state.waiters.append((id, continuation))
                return false
            }
            if free { continuation.resume() }
        }
    }

    /// Gives a permit back (to the longest waiter, if any).
    public func release() {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
            if state.waiters.isEmpty {
                state.permits += 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }

    private func expire(_ id: UInt64, error: DriverError) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index).continuation
        }
        continuation?.resume(throwing: error)
    }
}
