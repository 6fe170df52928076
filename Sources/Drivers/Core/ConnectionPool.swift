import Logging
import NIOConcurrencyHelpers

/// A connection to one store, leased to one caller at a time by a `ConnectionPool`.
public protocol PooledConnection: AnyObject, Sendable {
    /// False once the connection saw an I/O error: the pool closes it instead of reusing it.
    var isUsable: Bool { get }
    /// Frees the C handle. Called once, by the pool.
    func close()
}

/// A bounded pool of connections. Leasing is async (it never blocks a thread), opening a
/// connection runs on the store's `BlockingExecutor`, a caller waits at most
/// `acquireTimeout` for a free connection, and a broken connection is replaced rather than
/// handed out again.
public actor ConnectionPool<Connection: PooledConnection> {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Connection?, any Error>
    }

    private let store: DriverError.Store
    private let maxConnections: Int
    private let acquireTimeout: Duration
    private let open: @Sendable () async throws -> Connection
    private var idle: [Connection] = []
    private var count = 0
    private var waiters: [Waiter] = []
    private var nextWaiterID: UInt64 = 0
    private var closed = false

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
    public var openConnections: Int { count }

    /// Takes a connection: an idle one, a new one while under the limit, or the next one
    /// released, waiting at most `acquireTimeout`.
    public func lease() async throws -> Connection {
        if closed { throw DriverError(store, .closed, "the client was shut down") }
        while let connection = idle.popLast() {
            if connection.isUsable { return connection }
            retire(connection)
        }
        if count < maxConnections {
            count += 1
            return try await openReserved()
        }
        let id = nextWaiterID
        nextWaiterID += 1
        let timeout = acquireTimeout
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            await self?.expire(id)
        }
        defer { timer.cancel() }
        let handed: Connection? = try await withCheckedThrowingContinuation { continuation in
            waiters.append(Waiter(id: id, continuation: continuation))
        }
        if let handed { return handed }
        // A slot was freed for us (a broken connection was retired): open a new one.
        return try await openReserved()
    }

    /// Gives a leased connection back. A broken one is closed, and so are the idle ones
    /// opened before it: when the server went away they are broken too.
    public func release(_ connection: Connection) {
        guard connection.isUsable, !closed else {
            retire(connection)
            if !closed {
                for stale in idle { retire(stale) }
                idle.removeAll()
            }
            handSlotToWaiter()
            return
        }
        if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: connection)
        } else {
            idle.append(connection)
        }
    }

    /// Closes every idle connection and refuses new leases; leased ones close on release.
    public func close() {
        closed = true
        for connection in idle { retire(connection) }
        idle.removeAll()
        for waiter in waiters {
            waiter.continuation.resume(throwing: DriverError(store, .closed, "the client was shut down"))
        }
        waiters.removeAll()
    }

    private func openReserved() async throws -> Connection {
        do {
            return try await open()
        } catch {
            count -= 1
            handSlotToWaiter()
            throw error
        }
    }

    private func retire(_ connection: Connection) {
        connection.close()
        count -= 1
    }

    private func handSlotToWaiter() {
        guard !waiters.isEmpty, count < maxConnections else { return }
        count += 1
        waiters.removeFirst().continuation.resume(returning: nil)
    }

    private func expire(_ id: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        let waiter = waiters.remove(at: index)
        waiter.continuation.resume(
            throwing: DriverError(
                store, .timeout, "no free connection within \(acquireTimeout) (pool of \(maxConnections))"))
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
        do {
            let result = try await executor.run { try body(connection) }
            await pool.release(connection)
            return result
        } catch {
            await pool.release(connection)
            throw error
        }
    }

    func shutdown() async {
        await pool.close()
        await executor.shutdown()
    }
}
