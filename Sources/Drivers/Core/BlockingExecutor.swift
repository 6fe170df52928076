import NIOPosix

/// Runs blocking C calls on threads of its own, never on an event loop or the cooperative
/// pool. Each store client owns one, sized to its connection pool, so that a long
/// `XREAD BLOCK` can never starve PostgreSQL or MongoDB work of a thread.
public final class BlockingExecutor: Sendable {
    private let threads: NIOThreadPool
    private let store: DriverError.Store

    /// Starts `threads` threads at once (at least one; owners size it to their connection pool); `store` names the
    /// `.closed` error that `run` throws after `shutdown()`.
    public init(threads: Int, store: DriverError.Store) {
        self.threads = NIOThreadPool(numberOfThreads: max(1, threads))
        self.store = store
        self.threads.start()
    }

    /// Runs `body` on one of this executor's threads and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await threads.runIfActive(body)
        } catch is NIOThreadPoolError.ThreadPoolInactive {
            throw DriverError(store, .closed, "the client was shut down")
        }
    }

    /// Stops the threads once the work already submitted is done.
    public func shutdown() async {
        try? await threads.shutdownGracefully()
    }
}
