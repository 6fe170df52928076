import Foundation
import Logging

/// Applies the numbered SQL files of `migrations/` (`001_initial.sql`, ...) in order, each
/// in its own transaction, recording every applied version in `schema_migrations`. A
/// session advisory lock serialises runners, so two processes starting together apply
/// each migration once.
public struct Migrator: Sendable {
    /// One migration file.
    public struct Migration: Sendable, Equatable {
        /// The `NNN` of `NNN_name.sql`: migrations run in ascending order and `schema_migrations` records it as applied.
        public var version: Int
        /// The file name without `.sql` (e.g. `001_initial`), recorded in `schema_migrations` and named in errors.
        public var name: String
        /// The file's text, run in one transaction; it may hold several statements separated by `;`.
        public var sql: String

        /// A migration given in code rather than read from `migrations/` (the tests build their own).
        public init(version: Int, name: String, sql: String) {
            self.version = version
            self.name = name
            self.sql = sql
        }
    }

    /// The advisory lock key every Parley migrator takes ("parley" in ASCII).
    static let lockKey: Int64 = 0x7061_726c_6579

    /// Sorted by version: the order in which `migrate` applies those not applied yet.
    public let migrations: [Migration]

    /// Sorts `migrations` by version; unlike `init(directory:)`, it does not refuse two with the same version.
    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Reads `NNN_name.sql` files from `directory`.
    public init(directory: URL) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        var found: [Migration] = []
        for file in names where file.hasSuffix(".sql") {
            guard let prefix = file.split(separator: "_").first, let version = Int(prefix) else {
                throw DriverError(.postgres, .invalid, "migration \(file) does not start with a version number")
            }
            if found.contains(where: { $0.version == version }) {
                throw DriverError(.postgres, .invalid, "two migrations have version \(version)")
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            found.append(Migration(version: version, name: String(file.dropLast(4)), sql: sql))
        }
        self.init(migrations: found)
    }

    /// Finds `migrations/`: `PARLEY_MIGRATIONS_DIR`, else `./migrations`, else the nearest
    /// `migrations/` above the running executable (a build under `.build/` of the repo).
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        projectDirectory("migrations", variable: "PARLEY_MIGRATIONS_DIR", environment: environment)
    }

    /// Applies what is not applied yet; returns the versions it applied.
    @discardableResult
    public func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        let migrations = self.migrations
        let applied = try await client.withConnection { connection -> [Int] in
            try connection.query("SELECT pg_advisory_lock($1)", [Self.lockKey])
            defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [Self.lockKey]) }
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
            let done = Set(try connection.query("SELECT version FROM schema_migrations").compactMap { $0.int("version") })
            var applied: [Int] = []
            for migration in migrations where !done.contains(migration.version) {
                try connection.execute("BEGIN")
                do {
                    try connection.execute(migration.sql)
                    try connection.query(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name])
                    try connection.execute("COMMIT")
                } catch {
                    _ = try? connection.execute("ROLLBACK")
                    throw DriverError(
                        .postgres, .server, "migration \(migration.name) failed: \(error)",
                        sqlState: (error as? DriverError)?.sqlState)
                }
                applied.append(migration.version)
            }
            return applied
        }
        for version in applied { logger.info("applied migration", metadata: ["version": "\(version)"]) }
        return applied
    }
}
