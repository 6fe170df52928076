import Drivers
import Foundation
import Logging
import TestSupport
import Testing

@Suite("PostgreSQL driver against a real PostgreSQL")
struct PostgresTests {
    @Test func parameterisedQueriesRoundTripValues() async throws {
        let pg = TestStores.postgres()
        let rows = try await pg.query(
            "SELECT $1::text AS s, $2::bigint AS n, $3::boolean AS b, $4::text AS missing, $5::timestamptz AS at",
            [
                "it's \"quoted\"; DROP TABLE x", Int64(9_007_199_254_740_993), true, String?.none,
                Date(timeIntervalSince1970: 1_764_000_000.25),
            ])
        let row = try #require(rows.first)
        #expect(row.string("s") == "it's \"quoted\"; DROP TABLE x")
        #expect(row.int64("n") == 9_007_199_254_740_993)
        #expect(row.bool("b") == true)
        #expect(row["missing"] == nil)
        #expect(row.date("at") == Date(timeIntervalSince1970: 1_764_000_000.25))
        await pg.shutdown()
    }

    @Test func transactionRollsBackOnThrowAndOnConstraintError() async throws {
        let pg = TestStores.postgres()
        let table = TestStores.unique("t_tx")
        try await pg.query("CREATE TABLE \(table) (id int PRIMARY KEY, v text)")
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await pg.withTransaction { c in
                try c.query("INSERT INTO \(table) VALUES ($1, $2)", [1, "a"])
                throw Boom()
            }
        }
        #expect(try await pg.query("SELECT count(*) AS n FROM \(table)").first?.int("n") == 0)

        try await pg.query("INSERT INTO \(table) VALUES ($1, $2)", [1, "kept"])
        do {
            try await pg.withTransaction { c in
                try c.query("INSERT INTO \(table) VALUES ($1, $2)", [2, "lost"])
                try c.query("INSERT INTO \(table) VALUES ($1, $2)", [1, "clash"])
            }
            Issue.record("a duplicate primary key was accepted")
        } catch let error as DriverError {
            #expect(error.code == .duplicateKey)
            #expect(error.sqlState == "23505")
        }
        let rows = try await pg.query("SELECT id, v FROM \(table) ORDER BY id")
        #expect(rows.map { $0.string("v") } == ["kept"])
        // The connection that saw the error is still good for the next caller.
        let value = try await pg.withTransaction { c in try c.query("SELECT v FROM \(table) WHERE id = $1", [1]).first?.string("v") }
        #expect(value == "kept")

        do {
            try await pg.query("SELEC 1")
            Issue.record("bad SQL was accepted")
        } catch let error as DriverError {
            #expect(error.sqlState == "42601")
            #expect(error.code == .server)
        }
        try await pg.query("DROP TABLE \(table)")
        await pg.shutdown()
    }

    @Test func killedBackendGivesClearErrorThenRecovers() async throws {
        let pg = TestStores.postgres(maxConnections: 1)
        let pid = try #require(try await pg.query("SELECT pg_backend_pid() AS pid").first?.int("pid"))
        let admin = TestStores.postgres()
        try await admin.query("SELECT pg_terminate_backend($1)", [pid])
        do {
            try await pg.query("SELECT 1")
            Issue.record("a query succeeded on a terminated connection")
        } catch let error as DriverError {
            #expect(error.code == .unavailable)
        }
        let again = try await pg.query("SELECT pg_backend_pid() AS pid").first?.int("pid")
        #expect(again != nil && again != pid)  // a new connection replaced the broken one
        await pg.shutdown()
        await admin.shutdown()
    }

    @Test func serverStoppedMidUseGivesClearErrorThenRecovers() async throws {
        let server = try await PrivateServer.postgres("pg-stop")
        let pg = PostgresClient(
            .init(url: "postgresql://postgres@127.0.0.1:\(server.port)/postgres", maxConnections: 2, connectTimeout: .seconds(1)))
        try await eventually { try await pg.ping() }
        await server.kill()
        do {
            try await pg.query("SELECT 1")
            Issue.record("a query succeeded with the server stopped")
        } catch let error as DriverError {
            #expect(error.code == .unavailable)
        }
        try await server.start()
        try await eventually(seconds: 20) { try await pg.ping() }
        await pg.shutdown()
    }

    @Test func twoMigratorsAtOnceApplyEachMigrationOnce() async throws {
        let database = TestStores.unique("t_migrate")
        let admin = TestStores.postgres()
        try await admin.query("CREATE DATABASE \(database)")
        let url = TestStores.postgresURL.replacingOccurrences(of: "/parley", with: "/\(database)")
        let migrator = Migrator(migrations: [
            .init(version: 1, name: "001_a", sql: "CREATE TABLE a (id int PRIMARY KEY); SELECT pg_sleep(0.2);"),
            .init(version: 2, name: "002_b", sql: "CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (1);"),
        ])
        let one = TestStores.postgres(url: url)
        let two = TestStores.postgres(url: url)
        let logger = Logger(label: "test")
        async let first = migrator.migrate(one, logger: logger)
        async let second = migrator.migrate(two, logger: logger)
        let applied = try await first + second
        #expect(applied.sorted() == [1, 2])
        #expect(try await one.query("SELECT count(*) AS n FROM b").first?.int("n") == 1)
        #expect(try await migrator.migrate(one, logger: logger).isEmpty)  // already up to date

        let broken = Migrator(migrations: migrator.migrations + [.init(version: 3, name: "003_bad", sql: "CREATE TABLE c (; ")])
        await #expect(throws: DriverError.self) { try await broken.migrate(one, logger: logger) }
        #expect(try await one.query("SELECT max(version) AS v FROM schema_migrations").first?.int("v") == 2)
        await one.shutdown()
        await two.shutdown()
        try await admin.query("DROP DATABASE \(database)")
        await admin.shutdown()
    }

    @Test func repositoryMigrationsApplyCleanly() async throws {
        let database = TestStores.unique("t_repo_migrations")
        let admin = TestStores.postgres()
        try await admin.query("CREATE DATABASE \(database)")
        let pg = TestStores.postgres(url: TestStores.postgresURL.replacingOccurrences(of: "/parley", with: "/\(database)"))
        let directory = try #require(Migrator.defaultDirectory(), "set PARLEY_MIGRATIONS_DIR or run from the repository")
        let migrator = try Migrator(directory: directory)
        #expect(!migrator.migrations.isEmpty)
        let applied = try await migrator.migrate(pg, logger: Logger(label: "test"))
        #expect(applied == migrator.migrations.map(\.version))
        let tables = try await pg.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        let names = Set(tables.compactMap { $0.string("table_name") })
        #expect(names.isSuperset(of: ["users", "rooms", "room_members", "projector_checkpoints", "schema_migrations"]))
        await pg.shutdown()
        try await admin.query("DROP DATABASE \(database)")
        await admin.shutdown()
    }
}
