import ArgumentParser
import Dispatch
import Drivers
import Foundation
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A release `parley-server` started for a benchmark, beside this executable, on a free
/// port with its own namespace, schema and collection; removed with `stop()` (data is
/// left to the namespace, which nothing else uses).
final class BenchServer: Sendable {
    let port: Int
    let process: Process
    /// With `--projectors separate`: a second `parley-server --roles projectors` on the same
    /// namespace, at a lower CPU priority (`nice`).
    let projectorProcess: Process?
    /// Its namespace, PostgreSQL schema and MongoDB collection.
    let name: String
    var base: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, process: Process, projectorProcess: Process?, name: String) {
        self.port = port
        self.process = process
        self.projectorProcess = projectorProcess
        self.name = name
    }

    /// Milliseconds from now until both projectors have read and acknowledged every event
    /// of the log (nil: not within 30 s). Read from the consumer groups in Redis.
    func projectionCaughtUp() async throws -> Double? {
        let stores = try Stores(StoreConfiguration(environment: ProcessInfo.processInfo.environment))
        let stream = "\(name):log:{0}"
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(30) {
            let head = try await stores.redis.command(["XREVRANGE", stream, "+", "-", "COUNT", "1"]).array?.first?.array?.first?.string
            let groups = try await stores.redis.xinfoGroups(stream)
            let done = groups.count == 2 && groups.allSatisfy { $0["last-delivered-id"]?.string == head && $0["pending"]?.int == 0 }
            if done {
                let elapsed = ContinuousClock.now - start
                return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// Deletes what the server stored: its Redis keys, schema and collections.
    func removeData() async throws {
        let stores = try Stores(StoreConfiguration(environment: ProcessInfo.processInfo.environment))
        try await stores.redis.deleteKeys(matching: "\(name):*")
        try await stores.postgres.query("DROP SCHEMA IF EXISTS \(name) CASCADE")
        try await stores.mongo.collection(name).drop()
        try await stores.mongo.collection(name + "_checkpoints").drop()
    }

    static func start(roles: String, separateProjectors: Bool = false) async throws -> BenchServer {
        let name = "bench_ws_\(UInt32.random(in: 0...UInt32.max))"
        let port = Int.random(in: 20_000...40_000)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "parley-server")
        process.arguments = ["--port", "\(port)", "--roles", roles]
        process.environment = ProcessInfo.processInfo.environment.merging([
            "PARLEY_DEV_MODE": "1", "PARLEY_NAMESPACE": name, "PARLEY_POSTGRES_SCHEMA": name, "PARLEY_MONGO_COLLECTION": name,
            "PARLEY_BCRYPT_COST": "4", "PARLEY_RATE_SENDS_PER_SECOND": "1000000", "PARLEY_RATE_SEND_BURST": "1000000",
            "PARLEY_RATE_REGISTRATIONS_PER_MINUTE": "1000000", "PARLEY_WS_IDLE_SECONDS": "3600",
            "PARLEY_WS_MAX_CONNECTIONS_PER_USER": "100000", "PARLEY_LOG_LEVEL": "warning",
        ]) { $1 }.merging(
            ["EDITS", "RECEIPTS", "ROOMS", "MEMBERSHIP", "TYPING", "REACTIONS"].flatMap {
                [("PARLEY_RATE_\($0)_PER_MINUTE", "1000000"), ("PARLEY_RATE_\($0)_BURST", "1000000")]
            }
        ) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        if separateProjectors { process.arguments = ["--port", "\(port)", "--roles", "api"] }
        try process.run()
        var projectorProcess: Process?
        if separateProjectors {
            let projectors = Process()
            projectors.executableURL = URL(fileURLWithPath: "/usr/bin/nice")
            projectors.arguments = ["-n", "10", process.executableURL!.path, "--port", "\(port + 1)", "--roles", "projectors"]
            projectors.environment = process.environment
            projectors.standardOutput = FileHandle.nullDevice
            projectors.standardError = FileHandle.standardError
            try projectors.run()
            projectorProcess = projectors
        }
        let server = BenchServer(port: port, process: process, projectorProcess: projectorProcess, name: name)
        for _ in 0..<300 {
            if (try? await server.http("GET", "/healthz")) != nil { return server }
            try await Task.sleep(for: .milliseconds(100))
        }
        server.stop()
        throw BenchError("parley-server did not start on port \(port)")
    }

    func stop() {
        if process.isRunning { process.terminate() }
        if let projectorProcess, projectorProcess.isRunning { projectorProcess.terminate() }
    }

    /// The server's CPU time so far (user and system, both processes when the projectors
    /// run apart), in seconds.
    func cpuSeconds() -> Double {
        Self.cpuSeconds(pid: "\(process.processIdentifier)")
            + (projectorProcess.map { Self.cpuSeconds(pid: "\($0.processIdentifier)") } ?? 0)
    }

    /// The CPU time (user and system) of process `pid` ("self" for this one), in seconds.
    static func cpuSeconds(pid: String) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // After "pid (comm)": state is field 3, utime 14 and stime 15, in clock ticks.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The server's resident memory (VmRSS), in KiB.
    func residentKB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @discardableResult
    func http(_ method: String, _ path: String, token: String? = nil, body: [String: Any]? = nil) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            throw BenchError("\(method) \(path): \(status) \(String(decoding: data, as: UTF8.self))")
        }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    func register(_ name: String) async throws -> (id: String, token: String) {
        let reply = try await http("POST", "/v1/auth/register", body: ["username": name, "password": "benchmark password"])
        guard let token = reply["token"] as? String, let id = (reply["user"] as? [String: Any])?["id"] as? String else {
            throw BenchError("register \(name): \(reply)")
        }
        return (id, token)
    }

    func createRoom(_ name: String, owner: String, invite: [String]) async throws -> String {
        let reply = try await http("POST", "/v1/rooms", token: owner, body: ["name": name, "invite": invite])
        guard let id = (reply["room"] as? [String: Any])?["id"] as? String else { throw BenchError("create room: \(reply)") }
        return id
    }

    func join(_ room: String, token: String) async throws {
        try await http("POST", "/v1/rooms/\(room)/join", token: token)
    }
}
