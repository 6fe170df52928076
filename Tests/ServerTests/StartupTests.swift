import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `parley-server` as an operator starts it: a bad setting stops it at once with one line
/// naming what is wrong; a good one serves `/healthz`.
@Suite("parley-server start-up")
struct StartupTests {
    static let secret = String(repeating: "s", count: 40)

    /// Runs `parley-server` and expects exit 1 with one stderr line containing `expected`.
    func expectRefusal(_ environment: [String: String], removing: [String] = [], _ expected: String...) async throws {
        let result = try await runParley("parley-server", ["--port", "0"], environment: environment, removing: removing, timeout: 30)
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count == 1, "expected one line, got: \(result.stderr)")
        for text in expected { #expect(result.stderr.contains(text), "\(result.stderr)") }
    }

    @Test func missingJWTSecretOutsideDevModeStopsTheServer() async throws {
        try await expectRefusal([:], removing: ["PARLEY_JWT_SECRET", "PARLEY_DEV_MODE"], "PARLEY_JWT_SECRET is not set")
    }

    @Test func shortJWTSecretStopsTheServer() async throws {
        try await expectRefusal(["PARLEY_JWT_SECRET": "short"], "at least 32 bytes")
    }

    @Test func unreachableRedisStopsTheServer() async throws {
        let port = TestStores.freePort()
        try await expectRefusal(
            ["PARLEY_JWT_SECRET": Self.secret, "PARLEY_REDIS_CLUSTER": "", "PARLEY_REDIS_URL": "redis://127.0.0.1:\(port)/0"],
            "cannot start: Redis", "127.0.0.1:\(port)", "Connection refused")
    }

    @Test func wrongRedisPasswordStopsTheServer() async throws {
        let server = try PrivateServer("redis-auth-start") { port, dir in
            (
                "/usr/bin/redis-server",
                [
                    "--port", "\(port)", "--bind", "127.0.0.1", "--requirepass", "the-password",
                    "--save", "", "--appendonly", "no", "--dir", dir.path,
                ], nil
            )
        }
        try await server.start()
        try await expectRefusal(
            [
                "PARLEY_JWT_SECRET": Self.secret, "PARLEY_REDIS_CLUSTER": "",
                "PARLEY_REDIS_URL": "redis://:wrong@127.0.0.1:\(server.port)/0",
            ],
            "Redis authentication", "AUTH refused", "redis://:***@")
    }

    @Test func unknownPostgresRoleStopsTheServer() async throws {
        try await expectRefusal(
            [
                "PARLEY_JWT_SECRET": Self.secret,
                "PARLEY_POSTGRES_URL": "postgresql://nobody@127.0.0.1:\(TestStores.postgresURL.port)/parley",
            ],
            "cannot start: PostgreSQL", "role \"nobody\" does not exist")
    }

    @Test func unreachableMongoStopsTheServer() async throws {
        try await expectRefusal(
            [
                "PARLEY_JWT_SECRET": Self.secret, "PARLEY_MONGO_URI": "mongodb://127.0.0.1:\(TestStores.freePort())/parley",
                "PARLEY_STORE_TIMEOUT_MS": "500",
            ],
            "cannot start: MongoDB", "No suitable servers")
    }

    /// A server started together with its stores (a container platform starts them at once) waits for one that does not
    /// answer yet instead of exiting; under load a slow store's first answer can take longer than one connect timeout.
    @Test func aStoreThatComesUpAMomentAfterTheServerIsWaitedFor() async throws {
        let mongo = try PrivateServer.mongo("mongo-late")
        async let server = ServerProcess(environment: [
            "PARLEY_MONGO_URI": "mongodb://127.0.0.1:\(mongo.port)/parley", "PARLEY_STORE_TIMEOUT_MS": "500",
            "PARLEY_STORE_START_WAIT_MS": "20000",
        ])
        try await Task.sleep(for: .seconds(2))
        try await mongo.start()
        let s = try await server
        #expect(try await s.request("GET", "/readyz", timeout: 15).status == 200)
        await s.stop()
        await mongo.kill()
    }

    @Test func malformedSettingsAreNamed() async throws {
        try await expectRefusal(["PARLEY_JWT_SECRET": Self.secret, "PARLEY_LOG_PARTITIONS": "many"], "PARLEY_LOG_PARTITIONS=many")
        try await expectRefusal(["PARLEY_JWT_SECRET": Self.secret, "PARLEY_REDIS_URL": "localhost:6379"], "not a redis:// URL")
        let roles = try await runParley("parley-server", ["--roles", "api,chef"], environment: ["PARLEY_JWT_SECRET": Self.secret])
        #expect(roles.status == 1 && roles.stderr.contains("unknown role 'chef'"))
    }

    /// The partition count is recorded by the first server on a log; another count is
    /// refused, by the server and by parley-replay, before anything is read or appended.
    @Test func aPartitionCountOtherThanTheLogsIsRefused() async throws {
        let s = try await ServerProcess()
        _ = try await s.register("partitioned")
        await s.stop()
        let environment = [
            "PARLEY_JWT_SECRET": Self.secret, "PARLEY_NAMESPACE": s.namespace, "PARLEY_POSTGRES_SCHEMA": s.schema,
            "PARLEY_MONGO_COLLECTION": s.schema, "PARLEY_LOG_PARTITIONS": "4",
        ]
        try await expectRefusal(environment, "PARLEY_LOG_PARTITIONS is 4", "written with 1 partitions", "\(s.namespace):partitions")
        let replay = try await runParley("parley-replay", ["verify"], environment: environment)
        #expect(replay.status == 1 && replay.stderr.contains("written with 1 partitions"), "\(replay.stderr)")
        // The right count still starts, and the user registered before is there.
        let again = try await ServerProcess(environment: [:], namespace: s.namespace, schema: s.schema)
        #expect(
            try await again.request("POST", "/v1/auth/login", body: ["username": "partitioned", "password": "long enough password"]).status
                == 200)
        try await again.cleanUp()
    }

    @Test func migrateRunTwiceAtOnceIsSafe() async throws {
        async let a = runParley("parley-server", ["migrate"])
        async let b = runParley("parley-server", ["migrate"])
        let results = try await [a, b]
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        #expect(results.allSatisfy { $0.stdout.hasPrefix("migrations:") })
    }

    @Test func servesHealthzWithTheDefaultRoles() async throws {
        let port = TestStores.freePort()
        let process = Process()
        process.executableURL = repositoryRoot.appendingPathComponent(".build/debug/parley-server")
        process.arguments = ["--port", "\(port)"]
        // Its own log and read models: the default ones may hold another run's data (or the single Redis's, while the
        // tests run on the cluster), which the server would rightly find ahead of the log.
        let name = TestStores.unique("tstart")
        process.environment = ProcessInfo.processInfo.environment.merging([
            "PARLEY_JWT_SECRET": Self.secret, "PARLEY_NAMESPACE": name, "PARLEY_POSTGRES_SCHEMA": name, "PARLEY_MONGO_COLLECTION": name,
        ]) { $1 }
        // What the server says goes to a file, shown if it does not stop cleanly.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("parley-startup-\(port).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let logHandle = try FileHandle(forWritingTo: log)
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? logHandle.close()
            try? FileManager.default.removeItem(at: log)
        }
        let url = URL(string: "http://127.0.0.1:\(port)/healthz")!
        let (data, response) = try await eventually(seconds: 30) { try await URLSession.shared.data(from: url) }
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: data, as: UTF8.self).contains("\"status\":\"ok\""))
        let (readyBody, ready) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/readyz")!)
        #expect((ready as? HTTPURLResponse)?.statusCode == 200, "\(String(decoding: readyBody, as: UTF8.self))")

        // SIGTERM stops it cleanly: projectors finish their batch and the process exits 0.
        process.terminate()
        for _ in 0..<300 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning, "parley-server did not stop on SIGTERM")
        if !process.isRunning {
            #expect(process.terminationStatus == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
    }
}

extension String {
    /// The port of a store URL (`...@host:PORT/db`).
    var port: Int { Int(self.split(separator: ":").last?.split(separator: "/").first ?? "") ?? 0 }
}
