import EventLog
import Events
import Foundation
import Testing

@testable import Projections
@testable import Replayer

/// The replayer's pure parts: the audit trail, export lines, progress and difference text.
@Suite("Audit trail, export lines and reports (no servers)")
struct AuditTrailTests {
    let start = Date(timeIntervalSince1970: 1_764_000_000)

    func logged(_ data: EventData, actor: String, room: String? = nil, seq: Int64? = nil, _ n: Int) throws -> LoggedEvent {
        let event = Event(
            id: "e\(n)", at: start.addingTimeInterval(Double(n)), actorId: actor, roomId: room, seq: seq, data: data, hash: "h\(n)",
            prevHash: "h\(n - 1)")
        return LoggedEvent(partition: 0, entryID: "\(1_764_000_000_000 + n)-0", event: event, json: try EventCodec.encode(event))
    }

    func history() throws -> [LoggedEvent] {
        try [
            logged(
                .userRegistered(UserRegistered(userId: "u1", username: "ann", displayName: "Ann", passwordHash: "$2b$12$secret")),
                actor: "u1", 1),
            logged(
                .userRegistered(UserRegistered(userId: "u2", username: "bob", displayName: "Bob", passwordHash: "$2b$12$other")),
                actor: "u2", 2),
            logged(.roomCreated(RoomCreated(kind: .group, name: "Team")), actor: "u1", room: "r", 3),
            logged(.memberInvited(MemberChange(userId: "u2", role: .member)), actor: "u1", room: "r", 4),
            logged(.memberJoined(MemberChange(userId: "u2", role: .member)), actor: "u2", room: "r", 5),
            logged(.messageSent(MessageSent(messageId: "m1", body: "line one\n\"quoted\"")), actor: "u2", room: "r", seq: 1, 6),
            logged(.messageEdited(MessageEdited(messageId: "m1", body: "fixed")), actor: "u2", room: "r", 7),
            logged(.messageDeleted(MessageDeleted(messageId: "m1")), actor: "u1", room: "r", 8),
            logged(.roomRenamed(RoomRenamed(name: "Crew")), actor: "u1", room: "r", 9),
            logged(.memberRemoved(MemberChange(userId: "u2")), actor: "u1", room: "r", 10),
            logged(.messageSent(MessageSent(messageId: "x", body: "elsewhere")), actor: "u1", room: "other", seq: 1, 11),
        ]
    }

    @Test func aRoomTrailSaysWhoDidWhatWithBeforeAndAfterOfEdits() throws {
        var trail = AuditTrail(usernames: [:])
        for event in try history() { trail.add(event, include: event.event.roomId == "r") }
        #expect(
            trail.entries.map(\.summary) == [
                #"created group "Team""#, "invited bob as member", "bob joined as member", #"message m1: "line one\n\"quoted\"""#,
                #"edited m1: "line one\n\"quoted\"" → "fixed""#, #"deleted m1 (sent by bob: "fixed")"#, #"renamed "Team" → "Crew""#,
                "removed bob",
            ])
        #expect(trail.entries.map(\.actor) == ["ann", "ann", "bob", "bob", "bob", "ann", "ann", "ann"])
        #expect(trail.entries[3].seq == 1 && trail.entries[4].seq == nil)
        #expect(trail.entries[4].previousBody == "line one\n\"quoted\"" && trail.entries[5].previousBody == "fixed")
        let table = trail.table(withRoom: false)
        #expect(table.split(separator: "\n").count == 2 + 8)
        #expect(table.contains("2025-11-24 16:00:06.000  0:1764000000006-0  1    bob"))
    }

    @Test func passwordHashesNeverAppearInTrailsOrExports() throws {
        var trail = AuditTrail(usernames: [:])
        let events = try history()
        for event in events { trail.add(event, include: true) }
        let outputs = [trail.table(withRoom: true)] + trail.jsonLines() + events.map(ExportLine.json)
        for output in outputs { #expect(!output.contains("$2b$") && !output.contains("passwordHash"), "\(output)") }
        let registered = try #require(try JSONSerialization.jsonObject(with: Data(ExportLine.json(events[0]).utf8)) as? [String: Any])
        let event = try #require(registered["event"] as? [String: Any])
        #expect((event["data"] as? [String: Any])?["username"] as? String == "ann" && event["hash"] as? String == "h1")
        // Events with no secret are exported byte for byte as the log stores them.
        #expect(ExportLine.json(events[5]) == "{\"partition\":0,\"entryId\":\"1764000000006-0\",\"event\":\(events[5].json)}")
    }

    @Test func progressShowsCountRateAndETA() {
        let progress = Progress("rebuild metadata", total: 1_000_000, terminal: false)
        #expect(
            progress.render(250_000, note: "", elapsed: .seconds(5))
                == "rebuild metadata: 250,000 / 1,000,000 events (25%), 50,000 events/s, ETA 0:15")
        let open = Progress("export", total: nil, terminal: false)
        #expect(open.render(1234, note: "waiting", elapsed: .seconds(2)) == "export: 1,234 events, 617 events/s, waiting")
        #expect(Progress.clock(3725) == "1:02:05" && Progress.grouped(-1_234_567) == "-1,234,567")
    }

    @Test func aChangedRowNamesEachDifferingColumn() {
        let difference = ReadModelComparison.difference(
            "rooms", key: "r", live: #"{"id":"r","name":"Hacked","last_seq":3}"#, rebuilt: #"{"id":"r","name":"Crew","last_seq":4}"#)
        #expect(difference.description == #"rooms r: last_seq is 3, the log makes 4; name is "Hacked", the log makes "Crew""#)
        #expect(ReadModelComparison.difference("users", key: "u", live: nil, rebuilt: "{}").kind == .missing)
        #expect(ReadModelComparison.difference("users", key: "u", live: "{}", rebuilt: nil).kind == .unexpected)
    }

    @Test func eventsAfterTheComparedPositionMarkTheirRoomsAndUsers() throws {
        let changed = ChangedSince(try history())
        #expect(changed.rooms == ["r", "other"] && changed.users == ["u1", "u2"])
    }
}
