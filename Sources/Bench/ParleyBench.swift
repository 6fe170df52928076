import ArgumentParser
import Drivers
import Foundation
import NIOCore
import NIOPosix

/// The entry point: as in `parley-server`, Swift concurrency runs on NIO's event loops (the
/// load generator's WebSocket clients live there), unless `PARLEY_NIO_EXECUTOR=0`.
@main
enum ParleyBenchMain {
    static func main() {
        if ProcessInfo.processInfo.environment["PARLEY_NIO_EXECUTOR"] != "0" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        Task {
            await ParleyBench.main()
            exit(0)
        }
        dispatchMain()
    }
}

/// `parley-bench`: Parley's benchmarks. Each subcommand prints a Markdown table row per
/// figure, ready for `docs/benchmarks.md`.
struct ParleyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-bench", abstract: "Parley benchmarks.", subcommands: [DriversBench.self, AppendBench.self, CodecBench.self, ProjectionBench.self, RebuildBench.self, WebSocketBench.self, HistoryBench.self])
}
