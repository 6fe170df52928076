import Logging
import NIOConcurrencyHelpers

/// A connection to one store, leased to one caller at a time by a `ConnectionPool`.
public protocol PooledConnection: AnyObject, Sendable {
    /// False once the connection saw an I/O error: the pool closes it instead of reusing it.
    var isUsable: Bool { get }
    /// Frees the C handle. Called once, by the pool.
    func close()
}

/// A bounded pool of connections. Leasing never blocks a thread: a free connection is
/// taken under a lock, a new one is opened on the store's `BlockingExecutor`, and a caller
/// that finds the pool full waits (at most `acquireTimeout`) for the next release. A
/// broken connection is closed on release instead of being handed out again.
public final class ConnectionPool<Connection: PooledConnection>: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Connection?, any Error>
    }

    private struct State {
        var idle: [Connection] = []
        var count = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    /// What a lease attempt found, decided under the lock and acted on outside it.
    private enum Take {
        case connection(Connection)
        case open
        case wait(UInt64)
        case closed
    }

    private let store: DriverError.Store
    private let maxConnections: Int
    private let acquireTimeout: Duration
    private let open: @Sendable () async throws -> Connection
    private let state = NIOLockedValueBox(State())

    /// - Parameters:
    ///   - open: opens a new connection (runs the blocking connect on the executor).
    public init(
        store: DriverError.Store, maxConnections: Int, acquireTimeout: Duration,
        open: @escaping @Sendable () async throws -> Connection
    ) {
        self.store = store
        self.maxConnections = max(1, maxConnections)
        self.acquireTimeout = acquireTimeout
        self.open = open
    }

    /// How many connections are open now (idle or leased).
    public var openConnections: Int { state.withLockedValue { $0.count } }

    /// Takes a connection: an idle one, a new one while under the limit, or the next one
    /// released, waiting at most `acquireTimeout`.
    public func lease() async throws -> Connection {
        var stale: [Connection] = []
        let take: Take = state.withLockedValue { state in
            if state.closed { return .closed }
            switch Self.takeIdleOrSlot(&state, stale: &stale, max: maxConnections) {
            case .some(.some(let connection)): return .connection(connection)
            case .some(.none): return .open
            case .none:
                state.nextWaiterID += 1
                return .wait(state.nextWaiterID)
            }
        }
        for connection in stale { connection.close() }
        switch take {
        case .connection(let connection): return connection
        case .open: return try await openReserved()
        case .closed: throw DriverError(store, .closed, "the client was shut down")
        case .wait(let id):
            let timeout = acquireTimeout
            let timer = Task { [weak self] in
                try await Task.sleep(for: timeout)
                self?.expire(id)
            }
            defer { timer.cancel() }
            let handed: Connection? = try await withCheckedThrowingContinuation { continuation in
                // Re-check under the lock: a release may have come since we decided to wait.
                var stale: [Connection] = []
                let now: Connection?? = state.withLockedValue { state in
                    let found = Self.takeIdleOrSlot(&state, stale: &stale, max: maxConnections)
                    if found == nil { state.waiters.append(Waiter(id: id, continuation: continuation)) }
                    return found
                }
                for connection in stale { connection.close() }
                if let now { continuation.resume(returning: now) }
            }
            if let handed { return handed }
            // A slot was freed for us (a broken connection was retired): open a new one.
            return try await openReserved()
        }
    }

    /// Gives a leased connection back (from any thread). A broken one is closed, and so are
    /// the idle ones opened before it: when the server went away they are broken too.
    public func release(_ connection: Connection) {
        var retired: [Connection] = []
        let resume: (Waiter, Connection?)? = state.withLockedValue { state in
            if connection.isUsable && !state.closed {
                if !state.waiters.isEmpty { return (state.waiters.removeFirst(), connection) }
                state.idle.append(connection)
                return nil
            }
            retired.append(connection)
            if !state.closed {
                retired += state.idle
                state.idle.removeAll()
            }
            state.count -= retired.count
            return Self.slotForWaiter(&state, max: maxConnections)
        }
        for connection in retired { connection.close() }
        if let (waiter, handed) = resume { waiter.continuation.resume(returning: handed) }
    }

    /// Closes every idle connection and refuses new leases; leased ones close on release.
    public func close() {
        let (idle, waiters) = state.withLockedValue { state -> ([Connection], [Waiter]) in
            state.closed = true
            defer {
                state.idle.removeAll()
                state.waiters.removeAll()
            }
            state.count -= state.idle.count
            return (state.idle, state.waiters)
        }
        for connection in idle { connection.close() }
        for waiter in waiters {
            waiter.continuation.resume(throwing: DriverError(store, .closed, "the client was shut down"))
        }
    }

    private func openReserved() async throws -> Connection {
        do {
            return try await open()
        } catch {
            let resume = state.withLockedValue { state -> (Waiter, Connection?)? in
                state.count -= 1
                return Self.slotForWaiter(&state, max: maxConnections)
            }
            if let (waiter, handed) = resume { waiter.continuation.resume(returning: handed) }
            throw error
        }
    }

    /// A usable idle connection (`.some(c)`), else a reserved slot to open one in
    /// (`.some(nil)`), else nil (the pool is full). Broken idle ones go to `stale`.
    private static func takeIdleOrSlot(_ state: inout State, stale: inout [Connection], max: Int) -> Connection?? {
        while let connection = state.idle.popLast() {
            if connection.isUsable { return .some(connection) }
            stale.append(connection)
            state.count -= 1
        }
        if state.count < max {
            state.count += 1
            return .some(nil)
        }
        return nil
    }

    /// Gives a freed slot to the first waiter (it opens a connection itself).
    private static func slotForWaiter(_ state: inout State, max: Int) -> (Waiter, Connection?)? {
        guard !state.waiters.isEmpty, state.count < max else { return nil }
        state.count += 1
        return (state.waiters.removeFirst(), nil)
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLockedValue { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(
            throwing: DriverError(store, .timeout, "no free connection within \(acquireTimeout) (pool of \(maxConnections))"))
    }
}

/// A store's connections together with the threads they are used on: what Redis and
/// PostgreSQL clients share. `withConnection` leases asynchronously, then runs the
/// caller's blocking body on the executor.
final class BlockingConnections<Connection: PooledConnection>: Sendable {
    private let executor: BlockingExecutor
    private let pool: ConnectionPool<Connection>

    init(
        store: DriverError.Store, maxConnections: Int, acquireTimeout: Duration,
        open: @escaping @Sendable () throws -> Connection
    ) {
        let executor = BlockingExecutor(threads: maxConnections, store: store)
        self.executor = executor
        self.pool = ConnectionPool(store: store, maxConnections: maxConnections, acquireTimeout: acquireTimeout) {
            try await executor.run(open)
        }
    }

    func withConnection<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let connection = try await pool.lease()
        let pool = self.pool
        // Released on the executor's thread as soon as the body is done: no extra hop.
        return try await executor.run {
            defer { pool.release(connection) }
            return try body(connection)
        }
    }

    func shutdown() async {
        pool.close()
        await executor.shutdown()
    }
}
