import ArgumentParser
import Dispatch
import Foundation
import HummingbirdWSClient
import Drivers
import Logging
import NIOConcurrencyHelpers

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `parley-bench ws`: end to end through a real `parley-server` (release, started here on a
/// free port with a namespace of its own): `users` WebSocket clients in `rooms` group
/// rooms; messages sent over WebSocket at fixed offered rates; each message's
/// send-to-deliver latency at every other member of its room, measured from the time its
/// send was *scheduled* (so a generator that falls behind counts against Parley, not for
/// it); then `idle` idle connections and the server's resident memory per connection.
struct WebSocketBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws", abstract: "WebSocket send-to-deliver latency, delivered messages/s, idle connections and memory.")

    @Option(help: "Connected users (each in one room).") var users = 1000
    @Option(help: "Group rooms (users / rooms members each).") var rooms = 100
    @Option(parsing: .upToNextOption, help: "Offered messages/s, one run each.") var rates: [Int] = [1000, 2000, 5000]
    @Option(help: "Seconds each rate runs.") var seconds = 10.0
    @Option(help: "Idle connections to open after the rate runs (0: skip).") var idle = 10_000
    @Option(help: "The server's roles (api,projectors; api alone leaves the read models unprojected).") var serverRoles = "api,projectors"
    @Option(help: "Where the projectors run: together (in the server process, with --server-roles) or separate (a second parley-server --roles projectors, at nice 10).")
    var projectors = "together"
    @Option(help: "Load-generator clients: nio (frames read in NIO handlers) or async (HummingbirdWSClient, a task per connection).")
    var client = "nio"

    func run() async throws {
        let kind: any LoadClient.Type
        switch client {
        case "nio": kind = NIOBenchClient.self
        case "async": kind = BenchClient.self
        default: throw ValidationError("--client is nio or async")
        }
        guard ["together", "separate"].contains(projectors) else { throw ValidationError("--projectors is together or separate") }
        let server = try await BenchServer.start(roles: serverRoles, separateProjectors: projectors == "separate")
        defer { server.stop() }
        // Stopped and its data removed: runs do not pile up in the stores (a Redis grown
        // by earlier runs slows later ones: its AOF rewrites fork and copy it all).
        var cleaned = false
        defer { if !cleaned { print("warning: namespace \(server.name) left in the stores") } }
        let members = users / rooms
        print("setting up \(users) users in \(rooms) rooms of \(members) on \(server.base)")
        let tokens = try await withThrowingTaskGroup(of: (Int, (id: String, token: String)).self) { group in
            for i in 0..<users { group.addTask { (i, try await server.register("wsb\(i)")) } }
            var all = [(id: String, token: String)](repeating: ("", ""), count: users)
            for try await (i, user) in group { all[i] = user }
            return all
        }
        var roomIDs: [String] = []
        for r in 0..<rooms {
            let owner = tokens[r * members]
            let invited = (1..<members).map { tokens[r * members + $0].id }
            roomIDs.append(try await server.createRoom("bench \(r)", owner: owner.token, invite: invited))
            for m in 1..<members { try await server.join(roomIDs[r], token: tokens[r * members + m].token) }
        }
        let recorder = DeliveryRecorder()
        var clients: [any LoadClient] = []
        for (i, user) in tokens.enumerated() {
            clients.append(kind.init(port: server.port, token: user.token, userId: user.id, recorder: recorder))
            if i % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
        }
        for client in clients { try await client.waitUntilConnected(seconds: 30) }
        let rss0 = server.residentKB()
        print("connected: \(clients.count) WebSocket clients, server RSS \(rss0 / 1024) MiB")

        var rows: [String] = []
        for (phase, rate) in rates.enumerated() {
            recorder.startPhase(phase)
            let cpu0 = (server: server.cpuSeconds(), bench: BenchServer.cpuSeconds(pid: "self"))
            let total = Int(Double(rate) * seconds)
            let start = DispatchTime.now().uptimeNanoseconds
            var next = 0
            while next < total {
                let now = DispatchTime.now().uptimeNanoseconds
                let due = min(total, Int(Double(now - start) * Double(rate) / 1e9) + 1)
                while next < due {
                    let room = next % rooms, member = (next / rooms) % members
                    let scheduled = start + UInt64(Double(next) * 1e9 / Double(rate))
                    clients[room * members + member].send(roomID: roomIDs[room], body: "p\(phase) t\(scheduled) n\(next)")
                    next += 1
                }
                try await Task.sleep(for: .microseconds(500))
            }
            let sentFor = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            // Let the last deliveries arrive (at most 10 s).
            let expected = total * (members - 1)
            for _ in 0..<200 where recorder.delivered(phase) < expected { try await Task.sleep(for: .milliseconds(50)) }
            let delivered = recorder.delivered(phase)
            let cpu1 = (server: server.cpuSeconds(), bench: BenchServer.cpuSeconds(pid: "self"))
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            // How long after the last delivery projection had caught up (nothing to read or
            // acknowledge in either consumer group): a projector that fell behind shows here.
            let caughtUp = serverRoles.contains("projectors") || projectors == "separate" ? try await server.projectionCaughtUp() : nil
            let window = recorder.window(phase)
            let s = recorder.summary(phase), a = recorder.ackSummary(phase)
            rows.append(
                "| \(rate) | \(total) | \(expected) | \(delivered) | \(Int(Double(delivered) / max(window, sentFor))) | "
                    + String(format: "%.2f | %.2f | %.2f | %.2f | %.1f | ", s.p50, s.p90, s.p99, s.p999, s.max)
                    // CPU from the first send to the last delivery (a core = 100%), and the server's per delivery.
                    + String(
                        format: "%.0f | %.1f | %.0f |", 100 * (cpu1.server - cpu0.server) / elapsed,
                        1e6 * (cpu1.server - cpu0.server) / Double(max(1, delivered)), 100 * (cpu1.bench - cpu0.bench) / elapsed)
                    + (caughtUp.map { String(format: " %.0f |", $0) } ?? " - |")
                    + String(format: " %.2f | %.2f |", a.p50, a.p99))
        }
        print("")
        print("| offered msg/s | messages | deliveries expected | delivered | delivered/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU % | server CPU µs per delivery | generator CPU % | projected ms after | ack p50 ms | ack p99 ms |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows { print(row) }
        print("")
        print("errors from the server: \(recorder.errors) (first: \(recorder.firstError ?? "none"))")

        if idle > 0 {
            let before = server.residentKB()
            var idlers: [any LoadClient] = []
            for i in 0..<idle {
                idlers.append(kind.init(port: server.port, token: tokens[i % tokens.count].token, userId: "", recorder: nil))
                if i % 200 == 199 { try await Task.sleep(for: .milliseconds(50)) }
            }
            var connected = 0
            for client in idlers where (try? await client.waitUntilConnected(seconds: 30)) != nil { connected += 1 }
            try await Task.sleep(for: .seconds(2))
            let after = server.residentKB()
            print("")
            print("| idle connections | server RSS before (MiB) | after (MiB) | per connection (KB) |")
            print("|---:|---:|---:|---:|")
            print("| \(connected) | \(before / 1024) | \(after / 1024) | " + String(format: "%.1f |", Double(after - before) / Double(max(1, connected))))
            for client in idlers { client.close() }
        }
        for client in clients { client.close() }
        try await Task.sleep(for: .milliseconds(500))
        server.stop()
        server.process.waitUntilExit()
        server.projectorProcess?.waitUntilExit()
        try await server.removeData()
        cleaned = true
    }
}

/// What the clients received: per phase, deliveries and their latency from the scheduled send.
final class DeliveryRecorder: Sendable {
    private struct Phase {
        var recorder = LatencyRecorder()
        /// From the scheduled send to the sender's `ack` (the append done).
        var acks = LatencyRecorder()
        var delivered = 0
        var first: UInt64 = .max
        var last: UInt64 = 0
    }
    private struct State {
        var phases: [Int: Phase] = [:]
        var errors = 0
        var firstError: String?
    }
    private let state = NIOLockedValueBox(State())

    func startPhase(_ phase: Int) { state.withLockedValue { $0.phases[phase] = Phase() } }

    func record(phase: Int, scheduled: UInt64, at now: UInt64) {
        let recorder: LatencyRecorder? = state.withLockedValue { s in
            guard var p = s.phases[phase] else { return nil }
            p.delivered += 1
            p.first = min(p.first, now)
            p.last = max(p.last, now)
            s.phases[phase] = p
            return p.recorder
        }
        recorder?.record(.nanoseconds(Int64(now) - Int64(scheduled)))
    }

    func recordAck(phase: Int, scheduled: UInt64, at now: UInt64) {
        state.withLockedValue { $0.phases[phase]?.acks }?.record(.nanoseconds(Int64(now) - Int64(scheduled)))
    }

    func ackSummary(_ phase: Int) -> (p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        (state.withLockedValue { $0.phases[phase]?.acks } ?? LatencyRecorder()).summary
    }

    func error(_ text: String) {
        state.withLockedValue { s in
            s.errors += 1
            if s.firstError == nil { s.firstError = text }
        }
    }

    var errors: Int { state.withLockedValue { $0.errors } }
    var firstError: String? { state.withLockedValue { $0.firstError } }
    func delivered(_ phase: Int) -> Int { state.withLockedValue { $0.phases[phase]?.delivered ?? 0 } }
    /// Seconds from the first to the last delivery of the phase.
    func window(_ phase: Int) -> Double {
        state.withLockedValue { s in
            guard let p = s.phases[phase], p.last > p.first else { return 0 }
            return Double(p.last - p.first) / 1e9
        }
    }
    func summary(_ phase: Int) -> (p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        (state.withLockedValue { $0.phases[phase]?.recorder } ?? LatencyRecorder()).summary
    }
}

/// One WebSocket client of the benchmark on HummingbirdWSClient (`--client async`): sends
/// what it is given, and records every `message.sent` of another user it receives. Frames
/// are read by looking for the few fields needed (a full JSON parse per frame would cost
/// the generator more CPU than the server spends on it).
final class BenchClient: LoadClient {
    private let outgoing: AsyncStream<String>.Continuation
    private let task: Task<Void, Never>
    private let connected = NIOLockedValueBox<Bool?>(nil)

    required init(port: Int, token: String, userId: String, recorder: DeliveryRecorder?) {
        let (stream, outgoing) = AsyncStream<String>.makeStream()
        self.outgoing = outgoing
        let connected = self.connected
        let mine = Array("\"actorId\":\"\(userId)\"".utf8)
        task = Task {
            do {
                _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/v1/ws?token=\(token)", logger: Logger(label: "bench")) {
                    inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                guard case .text(var text) = message else { continue }
                                let now = DispatchTime.now().uptimeNanoseconds
                                // Connected once the hub has the session: events after `hello` come to it.
                                switch text.withUTF8({ Self.read($0, mine: mine) }) {
                                case .hello: connected.withLockedValue { $0 = true }
                                case .delivery(let phase, let scheduled): recorder?.record(phase: phase, scheduled: scheduled, at: now)
                                case .ack(let phase, let scheduled): recorder?.recordAck(phase: phase, scheduled: scheduled, at: now)
                                case .error: recorder?.error(text)
                                case .other: continue
                                }
                            }
                        }
                        group.addTask {
                            for await text in stream { try await outbound.write(.text(text)) }
                            try await outbound.close(.normalClosure, reason: nil)
                        }
                        _ = try await group.next()
                        group.cancelAll()
                    }
                }
            } catch {
                connected.withLockedValue { if $0 == nil { $0 = false } }
            }
        }
    }

    enum Received { case hello, delivery(Int, UInt64), ack(Int, UInt64), error, other }

    /// Classifies a frame by searching its bytes, not by parsing it: `hello`, a message
    /// event of another user with a benchmark body, an error frame, or anything else.
    static func read(_ bytes: UnsafeBufferPointer<UInt8>, mine: [UInt8]) -> Received {
        func find(_ n: [UInt8]) -> Int? {
            guard let first = n.first, bytes.count >= n.count else { return nil }
            var i = 0
            while i <= bytes.count - n.count {
                guard let at = bytes[i...(bytes.count - n.count)].firstIndex(of: first) else { return nil }
                if n.indices.allSatisfy({ bytes[at + $0] == n[$0] }) { return at }
                i = at + 1
            }
            return nil
        }
        if bytes.starts(with: "{\"type\":\"hello\"".utf8) { return .hello }
        if bytes.starts(with: "{\"type\":\"error\"".utf8) { return .error }
        let ack = bytes.starts(with: "{\"type\":\"ack\"".utf8)
        guard ack || (bytes.starts(with: "{\"type\":\"event\"".utf8) && find(mine) == nil), let body = find(Array("\"body\":\"p".utf8)) else {
            return .other
        }
        // p<phase> t<nanoseconds>
        var i = body + 9, phase = 0, t: UInt64 = 0
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 { phase = phase * 10 + Int(bytes[i] - 48); i += 1 }
        guard i + 1 < bytes.count, bytes[i] == 32, bytes[i + 1] == UInt8(ascii: "t") else { return .other }
        i += 2
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 { t = t * 10 + UInt64(bytes[i] - 48); i += 1 }
        return ack ? .ack(phase, t) : .delivery(phase, t)
    }

    func send(roomID: String, body: String) {
        outgoing.yield("{\"type\":\"send\",\"roomId\":\"\(roomID)\",\"body\":\"\(body)\"}")
    }

    func waitUntilConnected(seconds: Double = 30) async throws {
        try await waitForConnection(connected, seconds: seconds)
    }

    func close() { outgoing.finish() }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

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
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("parley-server")
        process.arguments = ["--port", "\(port)", "--roles", roles]
        process.environment = ProcessInfo.processInfo.environment.merging([
            "PARLEY_DEV_MODE": "1", "PARLEY_NAMESPACE": name, "PARLEY_POSTGRES_SCHEMA": name, "PARLEY_MONGO_COLLECTION": name,
            "PARLEY_BCRYPT_COST": "4", "PARLEY_RATE_SENDS_PER_SECOND": "1000000", "PARLEY_RATE_SEND_BURST": "1000000",
            "PARLEY_RATE_REGISTRATIONS_PER_MINUTE": "1000000", "PARLEY_WS_IDLE_SECONDS": "3600", "PARLEY_WS_MAX_CONNECTIONS_PER_USER": "100000", "PARLEY_LOG_LEVEL": "warning",
        ]) { $1 }
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
        Self.cpuSeconds(pid: "\(process.processIdentifier)") + (projectorProcess.map { Self.cpuSeconds(pid: "\($0.processIdentifier)") } ?? 0)
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
        guard (200..<300).contains(status) else { throw BenchError("\(method) \(path): \(status) \(String(decoding: data, as: UTF8.self))") }
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
