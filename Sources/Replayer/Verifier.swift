import Drivers
import EventLog
import Events
import Foundation
import Projections

/// `parley-replay verify`: rebuilds each read model from the log into a scratch area
/// (`<schema>_verify`, `<collection>_verify`) up to the log's head as verify starts, waits
/// for the live read models to reach that head, and compares them row by row and
/// document by document. Rows and documents touched by events appended after that head
/// are skipped (and counted), so verifying a serving system is not a race.
struct Verifier: Sendable {
    let context: ReplayContext
    let batchSize: Int
    let progressInterval: Double
    /// How long to wait for the live read models to reach the head.
    var waitSeconds: Double = 30
    /// How many differences to print.
    var show = 20
    var keepScratch = false

    /// What verify found.
    struct Result {
        var reports: [ReadModelReport] = []
        /// Live projectors that did not reach the head in time, with where they are.
        var behind: [String] = []
        var deadLetters: [String: Int] = [:]
        var differences: Int { reports.reduce(0) { $0 + $1.differences.count } }
        var passed: Bool { differences == 0 && behind.isEmpty }
    }

    func run(_ projections: [ReplayContext.Projection], output: (String) -> Void) async throws -> Result {
        let log = context.log
        let head = try await log.head()
        let total = try await log.reader.length()
        output("verify: the log holds \(Progress.grouped(total)) events; comparing the read models as of position \(head)")
        var result = Result()
        var pairs: [(live: any ReplayableProjector, scratch: any ReplayableProjector)] = []
        for projection in projections {
            let live = try await context.projector(projection)
            let scratch = try await context.projector(projection, area: "verify")
            try await scratch.dropArea()
            let progress = Progress("verify: rebuild \(live.name) from the log", total: total, interval: progressInterval)
            let outcome = try await ProjectionRebuild(log: log, scheduler: PriorityScheduler(workers: 1), batchSize: batchSize)
                .run(scratch, until: head, progress: { progress.update($0) })
            progress.finish(outcome.applied)
            pairs.append((live, scratch))
            if let behind = try await waitForLive(live, head: head) { result.behind.append(behind) }
            result.deadLetters[live.name] = try await log.deadLetters(live.name).count()
        }
        let changed = ChangedSince(try await eventsAfter(head))
        for (live, scratch) in pairs {
            switch (live, scratch) {
            case (let l as MetadataProjector, let s as MetadataProjector):
                result.reports += try await ReadModelComparison.metadata(live: l, rebuilt: s, skipping: changed)
            case (let l as SearchProjector, let s as SearchProjector):
                result.reports += try await ReadModelComparison.search(live: l, rebuilt: s, skipping: changed)
            case (let l as MessagesProjector, let s as MessagesProjector):
                result.reports.append(try await ReadModelComparison.messages(live: l, rebuilt: s, skipping: changed))
            default: continue
            }
            if !keepScratch { try await scratch.dropArea() }
        }
        print(result, output: output)
        return result
    }

    /// Waits until `live`'s checkpoint reaches `head` in every partition; nil when it
    /// does, otherwise where it stopped.
    private func waitForLive(_ live: any Projector, head: LogPosition) async throws -> String? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(waitSeconds * 1000))
        for partition in 0..<head.entryIDs.count where head.entryIDs[partition] != "0-0" {
            while true {
                let done = try await live.checkpoint(partition: partition)
                if !StreamID.less(done, head.entryIDs[partition]) { break }
                if ContinuousClock.now > deadline {
                    return "\(live.name): partition \(partition) is projected up to \(done), the log is at \(head.entryIDs[partition])"
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        return nil
    }

    /// Every event appended after `position`.
    private func eventsAfter(_ position: LogPosition) async throws -> [LoggedEvent] {
        var position = position
        var events: [LoggedEvent] = []
        while true {
            let page = try await context.log.reader.merged(after: position, count: 5000)
            if page.isEmpty { return events }
            position = page.reached
            events += page.events
        }
    }

    private func print(_ result: Result, output: (String) -> Void) {
        let rows = result.reports.map { r in
            [
                r.model, Progress.grouped(r.liveCount), Progress.grouped(r.rebuiltCount), Progress.grouped(r.differences.count),
                Progress.grouped(r.skipped),
            ]
        }
        output(
            Table(["read model", "live", "from the log", "differences", "skipped (changed since)"], rows, rightAligned: [1, 2, 3, 4]).text)
        for (name, count) in result.deadLetters.sorted(by: { $0.key < $1.key }) where count > 0 {
            output("note: \(count) event(s) parked in the \(name) dead-letter stream (\(context.log.deadLetters(name).key))")
        }
        for line in result.behind { output("live read model behind the log: \(line)") }
        let all = result.reports.flatMap(\.differences)
        if !all.isEmpty {
            output("differences (\(min(show, all.count)) of \(all.count) shown):")
            for difference in all.prefix(show) { output("  \(difference)") }
        }
        if result.passed {
            output("verify: OK, the live read models match the log")
        } else if result.differences > 0 {
            output(
                "verify: FAILED, \(result.differences) difference(s); `parley-replay rebuild --shadow` rebuilds the live read models from the log while serving"
            )
        } else {
            output(
                "verify: FAILED, a live read model did not catch up with the log in \(Int(waitSeconds)) s (is a server with the projectors role running?)"
            )
        }
    }
}

/// A plain text table: a header, a rule, rows; columns padded to their widest cell.
struct Table {
    var text: String

    init(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0.indices.contains(i) ? $0[i].count : 0 }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                return rightAligned.contains(i) ? pad + cell : (i == cells.count - 1 ? cell : cell + pad)
            }.joined(separator: "  ")
        }
        text = ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
            .joined(separator: "\n")
    }
}
