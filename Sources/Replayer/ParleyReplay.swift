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

/// Which read models: `--projection messages|metadata|search|all`.
enum ProjectionChoice: String, ExpressibleByArgument, CaseIterable {
    case all, metadata, messages, search

    var projections: [ReplayContext.Projection] {
        switch self {
        case .all: return ReplayContext.Projection.allCases
        case .metadata: return [.metadata]
        case .messages: return [.messages]
        case .search: return [.search]
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
    @Option(help: "Which read models: all, metadata (PostgreSQL), messages (MongoDB) or search (PostgreSQL).")
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
                let line =
                    shadow
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

extension ReplayContext.Projection {
    var store: ReplayContext.Store {
        switch self {
        case .metadata, .search: return .postgres
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
        context = try await ReplayContext(
            try ReplayConfiguration(environment: ProcessInfo.processInfo.environment), needs: needs, logger: logger)
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
