import Foundation
import NIOCore
import NIOPosix

/// Runs `body` as the process's main task and exits when it returns. Before anything async
/// runs, Swift concurrency's global executor becomes NIO's event loops (the threads sockets
/// live on): a task that writes to a socket then runs where the socket lives, with no hop
/// between thread pools. Blocking calls never run there (the store drivers have threads of
/// their own). `PARLEY_NIO_EXECUTOR=0` keeps Swift's own pool (for comparison; see
/// docs/benchmarks.md). Call it from a synchronous `main`.
public func runOnNIOEventLoops(_ body: @escaping @Sendable () async -> Void) -> Never {
    if ProcessInfo.processInfo.environment["PARLEY_NIO_EXECUTOR"] != "0" {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
    Task {
        await body()
        exit(0)
    }
    dispatchMain()
}
