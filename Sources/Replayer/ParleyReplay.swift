import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation
import Logging
import Projections

/// `parley-replay`: the operator's tool over the event log (CONTRACT section 6).
@main
struct ParleyReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-replay",
        abstract: "Rebuild, verify and audit Parley's read models and chat history from the event log.",
        discussion: """
            Reads the same environment as parley-server (PARLEY_REDIS_URL, PARLEY_POSTGRES_URL, PARLEY_MONGO_URI,
            PARLEY_LOG_PARTITIONS, PARLEY_NAMESPACE, PARLEY_POSTGRES_SCHEMA, PARLEY_MONGO_COLLECTION).
            Exit status: 0 done, 1 a difference, a broken chain or an error, 130 interrupted (a later run resumes).
            """,
        subcommands: [Rebuild.self, Verify.self, Audit.self, Export.self])
}

/// Options every long-running subcommand takes.
struct RunOptions: ParsableArguments {
    @Option(help: "Events read and applied per batch.")
    var batch = 5000
    @Option(help: "Seconds between progress lines when standard error is not a terminal.")
    var progressInterval = 2.0

    func validate() throws {
        guard (1...100_000).contains(batch) else { throw ValidationError("--batch must be in 1...100000") }
        guard progressInterval > 0 else { throw ValidationError("--progress-interval must be positive") }
    }
}

/// Which read models: `--projection messages|metadata|all`.
enum ProjectionChoice: String, ExpressibleByArgument, CaseIterable {
    case all, metadata, messages

    var projections: [ReplayContext.Projection] {
        switch self {
        case .all: return ReplayContext.Projection.allCases
        case .metadata: return [.metadata]
        case .messages: return [.messages]
        }
    }
}

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-project the log from the start into the read models.",
        discussion: """
            Without --shadow the read models are emptied and rebuilt in place; this is refused while a server's
            projectors run. With --shadow they are built beside the live ones while the server keeps serving,
            then swapped in atomically once caught up. Ctrl-C stops at the next batch; running the same command
            again resumes.
            """)
    @Option(help: "Which read models: all, metadata (PostgreSQL) or messages (MongoDB).")
    var projection: ProjectionChoice = .all
    @Flag(help: "Build beside the live read models and swap them in when caught up (the server may keep running).")
    var shadow = false
    @Flag(help: "With --shadow: discard an interrupted shadow build instead of resuming it.")
    var restart = false
    @Flag(help: "With --shadow: keep the replaced tables / collection (renamed) instead of dropping them.")
    var keepOld = false
    @OptionGroup var run: RunOptions

    func run() async throws {
        try await replay(needs: Set(projection.projections.map(\.store))) { context in
            let rebuilder = Rebuilder(context: context, batchSize: run.batch, progressInterval: run.progressInterval)
            for projection in projection.projections {
                let line = shadow
                    ? try await rebuilder.shadow(projection, restart: restart, keepOld: keepOld)
                    : try await rebuilder.inPlace(projection)
                print(line)
            }
            return 0
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild into a scratch area and compare with the live read models; exit 1 when they differ.")
    @Option(help: "Which read models: all, metadata or messages.")
    var projection: ProjectionChoice = .all
    @Option(help: "Seconds to wait for the live read models to reach the log's head.")
    var wait = 30.0
    @Option(help: "How many differences to print.")
    var show = 20
    @Flag(help: "Keep the scratch schema / collection (<name>_verify) for inspection.")
    var keepScratch = false
    @OptionGroup var run: RunOptions

    func run() async throws {
        try await replay(needs: Set(projection.projections.map(\.store))) { context in
            var verifier = Verifier(context: context, batchSize: run.batch, progressInterval: run.progressInterval)
            verifier.waitSeconds = wait
            verifier.show = show
            verifier.keepScratch = keepScratch
            let result = try await verifier.run(projection.projections) { print($0) }
            return result.passed ? 0 : 1
        }
    }
}

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
                print(broken == 0 ? "audit chain: OK, every hash checks out" : "audit chain: FAILED in \(broken) partition(s): the log was altered")
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

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the log as JSON lines: {partition, entryId, event}, password hashes left out.")
    @Option(help: "The file to write (- for standard output).") var out: String
    @Option(help: "Only this room's events.") var room: String?
    @OptionGroup var run: RunOptions

    func run() async throws {
        try await replay(needs: []) { context in
            let partitions = room.map { [context.log.partitioning.partition(ofRoom: $0)] } ?? Array(0..<context.log.partitioning.count)
            let writer = try LineWriter(path: out)
            let progress = Progress("export", total: room == nil ? try await context.log.reader.length() : nil, interval: run.progressInterval)
            var count = 0, read = 0
            do {
                try await forEachEvent(context, partitions: partitions, page: run.batch) { logged in
                    read += 1
                    if read % 5000 == 0 { progress.update(read) }
                    if let room, logged.event.roomId != room { return }
                    try writer.write(ExportLine.json(logged))
                    count += 1
                }
                try writer.close()
            } catch {
                try? writer.close()
                throw error
            }
            FileHandle.standardError.write(Data("export: \(Progress.grouped(count)) events written to \(out == "-" ? "standard output" : out)\n".utf8))
            return 0
        }
    }
}

/// One exported event: its place in the log and the event as stored, except that the
/// password hash of `user.registered` is left out (its `hash` then no longer recomputes
/// from the exported text; `parley-replay audit chain` checks the log itself).
enum ExportLine {
    static func json(_ logged: LoggedEvent) -> String {
        var event = logged.json
        if logged.event.type == .userRegistered, var object = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any],
            var data = object["data"] as? [String: Any]
        {
            data["passwordHash"] = nil
            object["data"] = data
            event = AuditTrail.json(object)
        }
        return "{\"partition\":\(logged.partition),\"entryId\":\"\(logged.entryID)\",\"event\":\(event)}"
    }
}

/// Buffered lines to a file or standard output.
final class LineWriter {
    private let handle: FileHandle
    private let closes: Bool
    private var buffer = Data()

    init(path: String) throws {
        if path == "-" {
            handle = .standardOutput
            closes = false
        } else {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw ReplayConfiguration.Invalid(description: "cannot create \(path)")
            }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            closes = true
        }
    }

    func write(_ line: String) throws {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count >= 1 << 20 { try flush() }
    }

    func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        if closes { try handle.close() }
    }
}

extension ReplayContext.Projection {
    var store: ReplayContext.Store {
        switch self {
        case .metadata: return .postgres
        case .messages: return .mongo
        }
    }
}

/// Opens the stores, runs `body` (interruptible by Ctrl-C) and exits with its status.
/// Configuration and store errors, refusals and interruptions end as one line on
/// standard error.
func replay(needs: Set<ReplayContext.Store>, _ body: @escaping @Sendable (ReplayContext) async throws -> Int32) async throws {
    var logger = Logger(label: "parley.replay")
    logger.logLevel = ProcessInfo.processInfo.environment["PARLEY_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    func fail(_ message: String, _ code: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("parley-replay: \(message)\n".utf8))
        return ExitCode(code)
    }
    let context: ReplayContext
    do {
        context = try await ReplayContext(try ReplayConfiguration(environment: ProcessInfo.processInfo.environment), needs: needs, logger: logger)
    } catch let error as ReplayConfiguration.Invalid {
        throw fail("bad configuration: \(error.description)", 1)
    } catch let error as DriverError {
        throw fail("cannot start: \(error.description)", 1)
    }
    let status: Int32
    do {
        status = try await runInterruptible { try await body(context) }
    } catch is Interrupted {
        await context.shutdown()
        throw fail("interrupted; what was done is kept, and the same command resumes it", 130)
    } catch {
        await context.shutdown()
        throw fail("\(error)", 1)
    }
    await context.shutdown()
    if status != 0 { throw ExitCode(status) }
}
