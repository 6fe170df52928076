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
    @Option(
        help:
            "Where the projectors run: together (in the server process, with --server-roles) or separate (a second parley-server --roles projectors, at nice 10)."
    )
    var projectors = "together"
    @Option(help: "Load-generator clients: nio (frames read in NIO handlers) or async (HummingbirdWSClient, a task per connection).")
    var client = "nio"
    @Option(
        parsing: .upToNextOption,
        help:
            "What is sent, one run of each rate each: messages (sends only) or realistic (per 20 operations: 12 sends, 5 reactions added or taken back, 2 read receipts, 1 reply in a thread with a mention)."
    )
    var mixes: [String] = ["messages"]

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
        guard mixes.allSatisfy({ ["messages", "realistic"].contains($0) }) else {
            throw ValidationError("--mixes are messages or realistic")
        }
        var roomIDs: [String] = []
        var rootIDs: [String] = []  // one message per room: what reactions and thread replies go to
        for r in 0..<rooms {
            let owner = tokens[r * members]
            let invited = (1..<members).map { tokens[r * members + $0].id }
            roomIDs.append(try await server.createRoom("bench \(r)", owner: owner.token, invite: invited))
            for m in 1..<members { try await server.join(roomIDs[r], token: tokens[r * members + m].token) }
            let root = try await server.http("POST", "/v1/rooms/\(roomIDs[r])/messages", token: owner.token, body: ["body": "root \(r)"])
            guard let id = (root["message"] as? [String: Any])?["id"] as? String else { throw BenchError("root message: \(root)") }
            rootIDs.append(id)
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
        // Each user's reaction still on its room's root (taken back by its next reaction, so no one passes the 20 limit),
        // and each room's sends so far (read receipts go a little behind them).
        var reacted = [String?](repeating: nil, count: users)
        var sentIn = [Int](repeating: 1, count: rooms)
        let runs = mixes.flatMap { mix in rates.map { (mix, $0) } }
        for (phase, (mix, rate)) in runs.enumerated() {
            recorder.startPhase(phase)
            var kinds = (sends: 0, reactions: 0, receipts: 0, threads: 0)
            let cpu0 = (server: server.cpuSeconds(), bench: BenchServer.cpuSeconds(pid: "self"))
            let total = Int(Double(rate) * seconds)
            let start = DispatchTime.now().uptimeNanoseconds
            var next = 0
            while next < total {
                let now = DispatchTime.now().uptimeNanoseconds
                let due = min(total, Int(Double(now - start) * Double(rate) / 1e9) + 1)
                while next < due {
                    let room = next % rooms
                    let member = (next / rooms) % members
                    let scheduled = start + UInt64(Double(next) * 1e9 / Double(rate))
                    let sender = room * members + member
                    let client = clients[sender]
                    switch mix == "realistic" ? (next / rooms) % 20 : 0 {
                    case 12..<17:
                        // A reaction whose emoji carries the time, or the taking back of the last one (its event carries it too).
                        if let emoji = reacted[sender] {
                            client.sendFrame(
                                #"{"type":"react","roomId":"\#(roomIDs[room])","messageId":"\#(rootIDs[room])","emoji":"\#(emoji)","remove":true}"#
                            )
                            reacted[sender] = nil
                        } else {
                            let emoji = "p\(phase)_t\(scheduled)"
                            client.sendFrame(
                                #"{"type":"react","roomId":"\#(roomIDs[room])","messageId":"\#(rootIDs[room])","emoji":"\#(emoji)"}"#)
                            reacted[sender] = emoji
                        }
                        kinds.reactions += 1
                    case 17..<19:
                        client.sendFrame(#"{"type":"read","roomId":"\#(roomIDs[room])","seq":\#(max(1, sentIn[room] - 3))}"#)
                        kinds.receipts += 1
                    case 19:
                        let mention = tokens[room * members + (member + 1) % members].id
                        client.sendFrame(
                            #"{"type":"send","roomId":"\#(roomIDs[room])","body":"p\#(phase) t\#(scheduled) n\#(next)","threadRootId":"\#(rootIDs[room])","mentions":["\#(mention)"]}"#
                        )
                        sentIn[room] += 1
                        kinds.threads += 1
                    default:
                        client.send(roomID: roomIDs[room], body: "p\(phase) t\(scheduled) n\(next)")
                        sentIn[room] += 1
                        kinds.sends += 1
                    }
                    next += 1
                }
                try await Task.sleep(for: .microseconds(500))
            }
            let sentFor = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            // Let the last deliveries arrive (at most 10 s).
            // Every send and reaction reaches the room's other members; receipts that move do too (counted apart).
            let expected = (kinds.sends + kinds.threads + kinds.reactions) * (members - 1)
            for _ in 0..<200 where recorder.delivered(phase) < expected { try await Task.sleep(for: .milliseconds(50)) }
            let delivered = recorder.delivered(phase)
            let cpu1 = (server: server.cpuSeconds(), bench: BenchServer.cpuSeconds(pid: "self"))
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            // How long after the last delivery projection had caught up (nothing to read or
            // acknowledge in either consumer group): a projector that fell behind shows here.
            let caughtUp = serverRoles.contains("projectors") || projectors == "separate" ? try await server.projectionCaughtUp() : nil
            let window = recorder.window(phase)
            let s = recorder.summary(phase)
            let a = recorder.ackSummary(phase)
            rows.append(
                "| \(mix) | \(rate) | \(total) | \(kinds.sends + kinds.threads)/\(kinds.reactions)/\(kinds.receipts) | \(expected) | \(delivered) (\(recorder.receipts(phase)) untimed) | \(Int(Double(delivered) / max(window, sentFor))) | "
                    + String(format: "%.2f | %.2f | %.2f | %.2f | %.1f | ", s.p50, s.p90, s.p99, s.p999, s.max)
                    // CPU from the first send to the last delivery (a core = 100%), and the server's per delivery.
                    + String(
                        format: "%.0f | %.1f | %.0f |", 100 * (cpu1.server - cpu0.server) / elapsed,
                        1e6 * (cpu1.server - cpu0.server) / Double(max(1, delivered)), 100 * (cpu1.bench - cpu0.bench) / elapsed)
                    + (caughtUp.map { String(format: " %.0f |", $0) } ?? " - |")
                    + String(format: " %.2f | %.2f |", a.p50, a.p99))
        }
        print("")
        print(
            "| mix | offered ops/s | operations | sends/reactions/receipts | deliveries expected | delivered | delivered/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU % | server CPU µs per delivery | generator CPU % | projected ms after | ack p50 ms | ack p99 ms |"
        )
        print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
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
            print(
                "| \(connected) | \(before / 1024) | \(after / 1024) | "
                    + String(format: "%.1f |", Double(after - before) / Double(max(1, connected))))
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

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
