import ArgumentParser
import Drivers
import Foundation
import Logging

/// The entry point: `parley-server` runs on NIO's event loops (`runOnNIOEventLoops`).
@main
enum ParleyServerMain {
    static func main() { runOnNIOEventLoops { await ParleyServer.main() } }
}

/// `parley-server`: the API, the WebSocket hub and the projectors (CONTRACT section 1).
struct ParleyServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-server",
        abstract: "Parley, the event-sourced chat backend: HTTP API, WebSocket hub and projectors.",
        subcommands: [Serve.self, Migrate.self, Seed.self],
        defaultSubcommand: Serve.self)
}

/// Flags shared by the subcommands; each overrides its environment variable.
struct ServeOptions: ParsableArguments {
    @Option(help: "Roles this process runs, comma-separated: api, projectors, archiver (default: all three).")
    var roles: String?
    @Option(help: "Address to listen on (PARLEY_HTTP_HOST, default 127.0.0.1).")
    var host: String?
    @Option(help: "Port to listen on (PARLEY_HTTP_PORT, default 8080).")
    var port: Int?
    @Flag(help: "Dev mode: a fixed JWT secret when PARLEY_JWT_SECRET is unset (PARLEY_DEV_MODE=1).")
    var dev = false
}

/// Runs the server until SIGINT/SIGTERM.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")
    @OptionGroup var options: ServeOptions

    func run() async throws {
        let logger = makeLogger()
        bootstrapMetrics()
        try await startOrExit(logger) {
            let configuration = try ServerConfiguration(environment: ProcessInfo.processInfo.environment, flags: options)
            let stores = try await openStores(configuration, logger: logger)
            try await migrate(stores, logger: logger)
            let app = try await buildApplication(configuration, stores: stores, logger: logger)
            // The stores and the log are services of the app: they close with it.
            return { try await app.runService() }
        }
    }
}

/// Applies the migrations in `migrations/` and exits.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the PostgreSQL migrations and exit.")

    func run() async throws {
        let logger = makeLogger()
        try await startOrExit(logger) {
            let stores: StoreConfiguration
            do { stores = try StoreConfiguration(environment: ProcessInfo.processInfo.environment) } catch let error as DriverError {
                throw ServerConfiguration.Invalid(description: error.message)
            }
            let postgres = PostgresClient(stores.postgres)
            let applied = try await migrateOnly(postgres, logger: logger)
            await postgres.shutdown()
            return {
                print(
                    applied.isEmpty ? "migrations: up to date" : "migrations: applied \(applied.map(String.init).joined(separator: ", "))")
            }
        }
    }
}

func makeLogger() -> Logger {
    var logger = Logger(label: "parley")
    let level = ProcessInfo.processInfo.environment["PARLEY_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .info
    return logger
}

/// Opens the store clients and checks each answers, so that a wrong URL or password stops
/// the server at start instead of failing its first request.
func openStores(_ configuration: ServerConfiguration, logger: Logger) async throws -> Stores {
    let stores = try Stores(configuration.stores)
    do {
        try await stores.check(waiting: configuration.stores.startWait)
    } catch {
        await stores.shutdown()
        throw error
    }
    return stores
}

func migrate(_ stores: Stores, logger: Logger) async throws {
    _ = try await migrateOnly(stores.postgres, logger: logger)
}

func migrateOnly(_ postgres: PostgresClient, logger: Logger) async throws -> [Int] {
    guard let directory = Migrator.defaultDirectory() else {
        throw ServerConfiguration.Invalid(description: "cannot find the migrations/ folder (set PARLEY_MIGRATIONS_DIR)")
    }
    return try await Migrator(directory: directory).migrate(postgres, logger: logger)
}

/// Runs the start-up steps; a configuration or store error is printed as one line on
/// stderr and the process exits 1 (no stack trace, no hang). Then runs what they return.
func startOrExit(_ logger: Logger, _ start: () async throws -> (() async throws -> Void)) async throws {
    let run: () async throws -> Void
    do {
        run = try await start()
    } catch let error as ServerConfiguration.Invalid {
        FileHandle.standardError.write(Data("parley-server: bad configuration: \(error.description)\n".utf8))
        throw ExitCode(1)
    } catch let error as DriverError {
        FileHandle.standardError.write(Data("parley-server: cannot start: \(error.description)\n".utf8))
        throw ExitCode(1)
    }
    try await run()
}
