import ArgumentParser
import Dispatch
import Foundation
import NIOConcurrencyHelpers

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `parley-bench history`: history page reads over HTTP through a real `parley-server`
/// (release, started here): one room filled with `messages` messages, then `concurrency`
/// readers each asking for pages (`limit`, newest first or `before` a random `seq`) as
/// fast as they are answered, for `seconds`. Reads come from the messages read model, so
/// on nx-27017 they measure mostly nx-27017 (tens of ms per query); a real MongoDB answers
/// these indexed queries far faster.
struct HistoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "History page reads over HTTP: reads/s and latency.")

    @Option(help: "Messages in the room.") var messages = 2000
    @Option(help: "Messages per page.") var limit = 50
    @Option(parsing: .upToNextOption, help: "Concurrent readers, one run each.") var concurrency: [Int] = [1, 8, 32]
    @Option(help: "Seconds each run lasts.") var seconds = 5.0

    func run() async throws {
        let server = try await BenchServer.start(roles: "api,projectors")
        defer { server.stop() }
        let owner = try await server.register("hb\(UInt16.random(in: 0...UInt16.max))")
        let room = try await server.createRoom("history", owner: owner.token, invite: [])
        print("filling a room with \(messages) messages on \(server.base)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var n = worker
                    while n < messages {
                        try await server.http(
                            "POST", "/v1/rooms/\(room)/messages", token: owner.token, body: ["body": "history message \(n)"])
                        n += 8
                    }
                }
            }
            try await group.waitForAll()
        }
        // Wait until the messages projector has every message.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let page = try await server.http("GET", "/v1/rooms/\(room)/messages?limit=1", token: owner.token)
            if ((page["messages"] as? [[String: Any]])?.first?["seq"] as? Int) == messages { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        var rows: [String] = []
        for readers in concurrency {
            let recorder = LatencyRecorder()
            let failures = NIOLockedValueBox(0)
            let start = DispatchTime.now().uptimeNanoseconds
            let end = start + UInt64(seconds * 1e9)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<readers {
                    group.addTask {
                        while DispatchTime.now().uptimeNanoseconds < end {
                            let before = Int.random(in: (limit + 1)...(messages + 1))  // a full page below it
                            let path = before > messages ? "?limit=\(limit)" : "?limit=\(limit)&before=\(before)"
                            let t0 = DispatchTime.now().uptimeNanoseconds
                            do {
                                let page = try await server.http("GET", "/v1/rooms/\(room)/messages\(path)", token: owner.token)
                                guard (page["messages"] as? [Any])?.count == limit else { throw BenchError("short page") }
                                recorder.record(.nanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - t0)))
                            } catch {
                                failures.withLockedValue { $0 += 1 }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let s = recorder.summary
            rows.append(
                "| \(readers) | \(limit) | \(recorder.count) | \(Int(Double(recorder.count) / elapsed)) | "
                    + String(format: "%.2f | %.2f | %.2f | %.2f | %.1f | ", s.p50, s.p90, s.p99, s.p999, s.max)
                    + "\(failures.withLockedValue { $0 }) |")
        }
        print("")
        print("| readers | page size | pages read | pages/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | failed |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows { print(row) }
    }
}
