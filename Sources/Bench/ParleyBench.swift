import ArgumentParser
import Drivers
import Foundation

/// The entry point: as `parley-server`, on NIO's event loops (the load generator's
/// WebSocket clients live there too).
@main
enum ParleyBenchMain {
    static func main() { runOnNIOEventLoops { await ParleyBench.main() } }
}

/// `parley-bench`: Parley's benchmarks. Each subcommand prints a Markdown table row per
/// figure, ready for `docs/benchmarks.md`.
struct ParleyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-bench", abstract: "Parley benchmarks.",
        subcommands: [
            DriversBench.self, AppendBench.self, CodecBench.self, ProjectionBench.self, RebuildBench.self, WebSocketBench.self,
            HistoryBench.self, SearchBench.self,
        ])
}
