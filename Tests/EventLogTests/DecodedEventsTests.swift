import Events
import Foundation
import Testing

@testable import EventLog

/// The per-process cache of decoded events.
@Suite("Decoded events, once per process")
struct DecodedEventsTests {
    let at = Date(timeIntervalSince1970: 1_795_000_000)

    func json(_ seq: Int64, actor: String = "a") throws -> String {
        try EventCodec.encode(Event(id: "e\(seq)", at: at, actorId: actor, roomId: "r", seq: seq, data: .roomRead(RoomRead(seq: seq))))
    }

    @Test func anEntryIdWithOtherJSONIsDecodedAgainNotTakenFromTheCache() throws {
        let cache = DecodedEvents(capacity: 16)
        let first = try cache.event(entryID: "1-0", json: try json(1))
        #expect(first.seq == 1)
        #expect(try cache.event(entryID: "1-0", json: try json(1)) == first)
        // Another namespace's stream has an entry with the same id and other content.
        let other = try cache.event(entryID: "1-0", json: try json(2, actor: "b"))
        #expect(other.seq == 2)
        #expect(other.actorId == "b")
        #expect(throws: (any Error).self) { try cache.event(entryID: "1-0", json: "{not json") }
    }

    @Test func theCacheStaysWithinItsCapacity() throws {
        let cache = DecodedEvents(capacity: 8)
        for n in 1...50 { #expect(try cache.event(entryID: "\(n)-0", json: try json(Int64(n))).seq == Int64(n)) }
        #expect(cache.count == 8)
        // The oldest went; a recent one is still right.
        #expect(try cache.event(entryID: "50-0", json: try json(50)).seq == 50)
        #expect(try cache.event(entryID: "1-0", json: try json(1)).seq == 1)
    }
}
