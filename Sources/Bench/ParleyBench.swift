import ArgumentParser
import Drivers
import Foundation

/// `parley-bench`: Parley's benchmarks. Each subcommand prints a Markdown table row per
/// figure, ready for `docs/benchmarks.md`.
@main
struct ParleyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-bench", abstract: "Parley benchmarks.", subcommands: [DriversBench.self, AppendBench.self, CodecBench.self, ProjectionBench.self, RebuildBench.self, WebSocketBench.self, HistoryBench.self])
}
