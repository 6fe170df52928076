import ArgumentParser
import Events
import Foundation

/// `parley-bench codec`: what each CPU step of an append costs, without any store.
struct CodecBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "codec", abstract: "Per-step CPU cost of building and reading events.")
    @Option var iterations = 20_000

    func run() async throws {
        let now = Date()
        let room = RoomState(id: "r", kind: .group, members: ["u": .init(role: .member, state: .joined, since: 1)], version: 1)
        let context = DecisionContext(actorId: "u", now: now) { UUID().uuidString.lowercased() }
        let command = Command.send(roomId: "r", messageId: "m", body: String(repeating: "m", count: 120), clientMsgId: "c", replyTo: nil)
        let event = try Rules.decide(command, DecisionState(room: room), context).events[0]
        let body = try HashChain.body(of: event)
        let stored = body + HashChain.suffix(seq: 1, prevHash: HashChain.genesis, hash: HashChain.genesis)
        print("| step | µs per call |")
        print("|---|---:|")
        measure("newID() (Parley's ids)") { _ = newID() }
        measure("UUID().uuidString (not used; for comparison)") { _ = UUID().uuidString.lowercased() }
        measure("formatTimestamp (byte by byte)") { _ = formatTimestamp(now) }
        measure("formatTimestamp through Foundation (for comparison)") { _ = formatTimestampWithFoundation(1_795_000_000_123) }
        measure("parseTimestamp (byte by byte)") { _ = parseTimestamp("2026-11-25T13:49:10.123Z") }
        measure("parseTimestamp through Foundation (for comparison)") { _ = parseTimestampWithFoundation("2026-11-25T13:49:10.123Z") }
        measure("Rules.decide (send)") { _ = try? Rules.decide(command, DecisionState(room: room), context) }
        measure("HashChain.body (hand-written writer)") { _ = try? HashChain.body(of: event) }
        measure("EventCodec.encode (JSONEncoder; not on the append path)") { _ = try? EventCodec.encode(event) }
        measure("HashChain.digest (SHA-256)") { _ = HashChain.digest(body) }
        measure("EventCodec.decode (the hand-written reader; the hub and projectors)") { _ = try? EventCodec.decode(stored) }
        measure("JSONDecoder of an event (for comparison)") { _ = try? EventCodec.decode(Data(stored.utf8)) }
        measure("JSONSerialization of a request (not used; for comparison)") {
            _ = try? JSONSerialization.data(
                withJSONObject: [
                    "f": [[3, "u", "member:joined:1"]], "e": [["b": body, "h": "x", "s": 3, "x": [["set", 4, "m", "u|0"]]]],
                ] as [String: Any])
        }
    }

    func measure(_ name: String, _ body: () -> Void) {
        for _ in 0..<200 { body() }
        let start = ContinuousClock.now
        for _ in 0..<iterations { body() }
        let elapsed = ContinuousClock.now - start
        let micros = (Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / Double(iterations)
        print("| \(name) | \(String(format: "%.2f", micros)) |")
    }
}
