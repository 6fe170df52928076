import EventLog
import Foundation
import TestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A real `parley-server` process on a free port, with a Redis namespace, a PostgreSQL
/// schema and a MongoDB collection of its own, and a small JSON HTTP client for it.
final class ServerProcess: @unchecked Sendable {
    static let secret = String(repeating: "k", count: 48)
    let port: Int
    let namespace: String
    let schema: String
    let process = Process()

    /// A server; with `sharing`, a second instance on the same namespace, schema and
    /// collection (API and WebSocket only: the first one runs the projectors).
    /// With `namespace` and `schema`, a server (both roles) on the log and read models an
    /// earlier one left.
    /// Every command class's rate limit out of the way of the flows (the limits have tests of their own).
    static let generousRates = Dictionary(
        uniqueKeysWithValues: ["EDITS", "RECEIPTS", "ROOMS", "MEMBERSHIP", "TYPING", "REACTIONS"].flatMap {
            [("PARLEY_RATE_\($0)_PER_MINUTE", "1000000"), ("PARLEY_RATE_\($0)_BURST", "100000")]
        } + [
            ("PARLEY_RATE_LOGINS_PER_MINUTE", "1000000"), ("PARLEY_RATE_LOGIN_FAILURES_PER_HOUR", "1000000"),
            ("PARLEY_WS_REPLAYS_PER_MINUTE", "1000000"), ("PARLEY_WS_REPLAY_BURST", "100000"),
        ])

    /// The stream of `partition` of this server's log (written with `partitions`), as it names it on the Redis the
    /// tests run against (a cluster spreads the tags).
    func stream(_ partition: Int = 0, partitions: Int = 1) -> String {
        let tags: PartitionTags = TestStores.redisCluster.isEmpty ? .plain(partitions: partitions) : .spread(partitions: partitions)
        return Keys(namespace: namespace, tags: tags).stream(partition)
    }

    init(sharing other: ServerProcess? = nil, environment extra: [String: String] = [:], namespace: String? = nil, schema: String? = nil)
        async throws
    {
        port = TestStores.freePort()
        self.namespace = namespace ?? other?.namespace ?? TestStores.unique("tsrv").replacingOccurrences(of: "_", with: "-")
        self.schema = schema ?? other?.schema ?? TestStores.unique("tsrv")
        process.executableURL = repositoryRoot.appendingPathComponent(".build/debug/parley-server")
        process.arguments = ["--port", "\(port)"] + (other == nil ? [] : ["--roles", "api"])
        process.environment = ProcessInfo.processInfo.environment.merging(
            [
                "PARLEY_JWT_SECRET": Self.secret, "PARLEY_NAMESPACE": self.namespace, "PARLEY_POSTGRES_SCHEMA": self.schema,
                "PARLEY_MONGO_COLLECTION": self.schema, "PARLEY_BCRYPT_COST": "4",
                // Flows send fast; the limits have tests of their own.
                "PARLEY_RATE_SENDS_PER_SECOND": "100000", "PARLEY_RATE_SEND_BURST": "100000",
            ].merging(Self.generousRates) { $1 }.merging(extra) { $1 }
        ) { $1 }
        process.standardOutput = FileHandle.nullDevice
        // Kept so that a server that stops at start says why in the test's failure.
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent("\(self.namespace).stderr.log")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while (try? await request("GET", "/healthz")) == nil {
            if !process.isRunning {
                let said = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
                throw URLError(
                    .cannotConnectToHost,
                    userInfo: [
                        NSLocalizedDescriptionKey:
                            "parley-server exited at start (status \(process.terminationStatus)): \(said.suffix(2000))"
                    ])
            }
            guard Date() < deadline else { throw URLError(.timedOut) }
            try await Task.sleep(for: .milliseconds(100))
        }
        // The answer must have come from this process: one that could not bind its port exits, and another server on
        // that port would answer for it.
        try await Task.sleep(for: .milliseconds(100))
        guard process.isRunning else {
            let said = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
            throw URLError(
                .cannotConnectToHost,
                userInfo: [NSLocalizedDescriptionKey: "parley-server exited after another answered on its port: \(said.suffix(2000))"])
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// SIGTERM, then waits (without blocking a thread) for the exit; SIGKILL after 15 s.
    func stop() async {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<300 where process.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// `@unchecked Sendable`: an immutable parse of a response (Foundation JSON values).
    struct HTTPResult: @unchecked Sendable {
        let status: Int
        let json: [String: Any]
        var text = ""
        var retryAfter: String?
        var error: String? { (json["error"] as? [String: Any])?["code"] as? String }
        subscript(path: String...) -> Any? {
            var value: Any? = json
            for key in path { value = (value as? [String: Any])?[key] }
            return value
        }
        init(status: Int, json: [String: Any]) {
            self.status = status
            self.json = json
        }
    }

    /// Sends a request; `body` is JSON-encoded unless it is raw `Data`.
    @discardableResult
    func request(
        _ method: String, _ path: String, token: String? = nil, body: Any? = nil, headers: [String: String] = [:], timeout: Double = 60
    ) async throws -> HTTPResult {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.timeoutInterval = timeout
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let data = body as? Data {
            request.httpBody = data
        } else if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        var result = HTTPResult(status: (response as? HTTPURLResponse)?.statusCode ?? 0, json: json)
        result.text = String(decoding: data, as: UTF8.self)
        result.retryAfter = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Retry-After")
        return result
    }

    /// Registers a user; returns (id, token).
    func register(_ name: String, password: String = "long enough password") async throws -> (id: String, token: String) {
        let result = try await request("POST", "/v1/auth/register", body: ["username": name, "password": password])
        guard result.status == 201, let token = result.json["token"] as? String, let id = result["user", "id"] as? String else {
            throw URLError(.badServerResponse)
        }
        return (id, token)
    }

    /// Repeats a read until `condition` holds (read models are projected a moment later).
    func until(_ path: String, token: String, _ condition: @escaping (HTTPResult) -> Bool) async throws -> HTTPResult {
        try await eventually(seconds: 15) {
            let result = try await self.request("GET", path, token: token)
            guard condition(result) else { throw URLError(.cannotParseResponse) }
            return result
        }
    }

    func cleanUp() async throws {
        await stop()
        try? FileManager.default.removeItem(at: FileManager.default.temporaryDirectory.appendingPathComponent("\(namespace).stderr.log"))
        let pg = TestStores.postgres()
        try await pg.query("DROP SCHEMA IF EXISTS \(schema) CASCADE")
        await pg.shutdown()
        let mongo = try TestStores.mongo()
        try await TestStores.dropMessagesAreas(mongo, base: schema)
        await mongo.shutdown()
        let redis = try TestStores.redis()
        try await redis.deleteKeys(matching: "\(namespace)*")
        await redis.shutdown()
    }
}
