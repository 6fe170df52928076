import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation
import Logging
import Projections

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The history of a room or a user from the log, or a check of its hash chain.",
        subcommands: [Room.self, User.self, Chain.self])

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, jsonl }

    struct Room: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every event of a room: who did what when, edits and deletions included.")
        @Argument(help: "The room id.") var roomId: String
        @Option(help: "table or jsonl.") var format: Format = .table

        func run() async throws {
            try await replay(needs: []) { context in
                let log = context.log
                let partition = log.partitioning.partition(ofRoom: roomId)
                var trail = AuditTrail(usernames: try await usernames(context, except: partition))
                try await forEachEvent(context, partitions: [partition]) { trail.add($0, include: $0.event.roomId == roomId) }
                guard !trail.entries.isEmpty else {
                    FileHandle.standardError.write(Data("parley-replay: no events for room \(roomId) in the log\n".utf8))
                    return 1
                }
                output(trail, format: format, withRoom: false)
                return 0
            }
        }
    }

    struct User: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Everything a user did and everything done to them, in every room; with --received, every event they were sent.")
        @Argument(help: "The user id.") var userId: String
        @Option(help: "table or jsonl.") var format: Format = .table
        @Flag(help: "Every event the user received (the WebSocket hub's rule), not only their own and those about them.")
        var received = false

        func run() async throws {
            try await replay(needs: []) { context in
                let partitions = Array(0..<context.log.partitioning.count)
                var trail = AuditTrail(usernames: try await usernames(context, except: nil))
                // Folded from the start of the log, the viewer holds the user's rooms at each event.
                var viewer = Viewer(userId: userId, rooms: [])
                try await forEachEvent(context, partitions: partitions) { logged in
                    let reaches = viewer.receives(logged.event)
                    let mine = logged.event.actorId == userId || Audience.concerns(userId, logged.event)
                    trail.add(logged, include: received ? reaches || logged.event.actorId == userId : mine)
                }
                guard !trail.entries.isEmpty else {
                    FileHandle.standardError.write(Data("parley-replay: no events of user \(userId) in the log\n".utf8))
                    return 1
                }
                trail.sortByLogTime()
                output(trail, format: format, withRoom: true)
                return 0
            }
        }
    }

    struct Chain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every hash of the log; name the first broken position of each partition.")

        func run() async throws {
            try await replay(needs: []) { context in
                var broken = 0
                var rows: [[String]] = []
                for partition in 0..<context.log.partitioning.count {
                    let report = try await context.log.verifyChain(partition: partition)
                    if let firstBreak = report.firstBreak {
                        broken += 1
                        let at = firstBreak.entryID == "end" ? "the end (the last event was removed)" : "\(partition):\(firstBreak.entryID)"
                        rows.append(["\(partition)", Progress.grouped(report.checked), "BROKEN at \(at): \(firstBreak.failure)"])
                    } else {
                        rows.append(["\(partition)", Progress.grouped(report.checked), "intact, head hash \(report.headHash)"])
                    }
                }
                print(Table(["partition", "events", "chain"], rows, rightAligned: [1]).text)
                print(
                    broken == 0
                        ? "audit chain: OK, every hash checks out" : "audit chain: FAILED in \(broken) partition(s): the log was altered")
                return broken == 0 ? 0 : 1
            }
        }
    }

    static func output(_ trail: AuditTrail, format: Format, withRoom: Bool) {
        switch format {
        case .table: print(trail.table(withRoom: withRoom))
        case .jsonl: for line in trail.jsonLines() { print(line) }
        }
    }
}

extension AuditTrail {
    /// Orders entries of several partitions by the time the log took them.
    mutating func sortByLogTime() {
        reorder { a, b in StreamID.less(a.entryID, b.entryID) || (a.entryID == b.entryID && a.partition < b.partition) }
    }
}

/// Usernames from the `user.registered` events (users live in partition 0); `except` is a
/// partition the caller reads anyway.
func usernames(_ context: ReplayContext, except: Int?) async throws -> [String: String] {
    guard except != context.log.partitioning.userPartition else { return [:] }
    var names: [String: String] = [:]
    try await forEachEvent(context, partitions: [context.log.partitioning.userPartition]) { logged in
        if case .userRegistered(let user) = logged.event.data { names[user.userId] = user.username }
    }
    return names
}

/// Reads `partitions` from their first event, in pages; entries that cannot be decoded
/// are reported on standard error and skipped.
func forEachEvent(_ context: ReplayContext, partitions: [Int], page: Int = 5000, _ body: (LoggedEvent) throws -> Void) async throws {
    for partition in partitions {
        try await context.log.reader.forEachPage(partition: partition, count: page) { page in
            for bad in page.unreadable {
                FileHandle.standardError.write(Data("parley-replay: entry \(partition):\(bad.entryID) is unreadable: \(bad.reason)\n".utf8))
            }
            for event in page.events { try body(event) }
        }
    }
}
