import Foundation
import Testing

@testable import Events

@Suite("Event codec, upcasting and the hash chain")
struct EventCodecTests {
    let at = Date(timeIntervalSince1970: 1_764_000_000.123)

    @Test func everyEventTypeRoundTripsWithStableWireNames() throws {
        let samples: [EventData] = [
            .userRegistered(UserRegistered(userId: "u", username: "ann", displayName: "Ann", passwordHash: "$2b$x")),
            .roomCreated(RoomCreated(kind: .group, name: "n")), .roomCreated(RoomCreated(kind: .direct, members: ["a", "b"])),
            .memberInvited(MemberChange(userId: "u", role: .member)), .inviteDeclined(MemberChange(userId: "u")),
            .memberJoined(MemberChange(userId: "u", role: .member)), .memberLeft(MemberChange(userId: "u")),
            .memberRemoved(MemberChange(userId: "u")), .memberRemoved(MemberChange(userId: "u", previousState: .invited)),
            .memberRoleChanged(MemberChange(userId: "u", role: .admin)),
            .roomRenamed(RoomRenamed(name: "n")), .messageSent(MessageSent(messageId: "m", body: "b\"é/\n", replyTo: "m0")),
            .messageEdited(MessageEdited(messageId: "m", body: "b2")), .messageDeleted(MessageDeleted(messageId: "m")),
            .roomRead(RoomRead(seq: 7)), .reactionAdded(Reaction(messageId: "m", emoji: "👍🏽")),
            .reactionRemoved(Reaction(messageId: "m", emoji: ":ship\"it:")), .messagePinned(MessagePin(messageId: "m")),
            .messageUnpinned(MessagePin(messageId: "m")),
            .memberBanned(MemberChange(userId: "u", previousState: .joined, reason: "spam \"links\"")),
            .memberUnbanned(MemberChange(userId: "u")), .memberMuted(MemberChange(userId: "u", until: at)),
            .memberMuted(MemberChange(userId: "u")), .memberUnmuted(MemberChange(userId: "u")), .userBlocked(UserBlock(userId: "u")),
            .userUnblocked(UserBlock(userId: "u")),
            .messageSent(MessageSent(messageId: "m2", body: "in a thread", threadRootId: "m", mentions: ["u", "v\"w"])),
        ]
        #expect(Set(samples.map(\.type)) == Set(EventType.allCases))
        for data in samples {
            let event = Event(id: "e1", at: at, actorId: "a", roomId: "r", seq: 3, data: data, hash: "h", prevHash: "p")
            let json = try EventCodec.encode(event)
            #expect(json.contains("\"type\":\"\(data.type.rawValue)\""))
            #expect(try EventCodec.decode(json) == event)
            // The log's hand-written body is exactly JSONEncoder's output minus the appended fields.
            var bare = event
            bare.seq = nil
            bare.hash = nil
            bare.prevHash = nil
            #expect(EventCodec.body(bare) + "}" == (try EventCodec.encode(bare)))
        }
        #expect(
            EventCodec.body(Event(id: "e", at: at, actorId: "a\u{1}\"\\", data: .roomRead(RoomRead(seq: 1)))) + "}"
                == (try EventCodec.encode(Event(id: "e", at: at, actorId: "a\u{1}\"\\", data: .roomRead(RoomRead(seq: 1))))))
        let sent = try EventCodec.encode(Event(id: "e", at: at, actorId: "a", data: .messageSent(MessageSent(messageId: "m", body: "b"))))
        #expect(sent.contains("\"clientMsgId\":null"))
        #expect(sent.contains("\"at\":\"2025-11-24T16:00:00.123Z\""))
    }

    @Test func aStoredV1UserRegisteredIsUpcastToV2() throws {
        // Written before displayName existed (v1): still readable, with the username standing in.
        let stored =
            #"{"actorId":"u1","at":"2025-01-02T03:04:05.678Z","data":{"passwordHash":"$2b$12$abc","userId":"u1","username":"ann"},"id":"e1","type":"user.registered","v":1,"prevHash":"0000000000000000000000000000000000000000","hash":"aa"}"#
        let event = try EventCodec.decode(stored)
        #expect(event.v == 2)
        #expect(
            event.data == .userRegistered(UserRegistered(userId: "u1", username: "ann", displayName: "ann", passwordHash: "$2b$12$abc")))
        #expect(event.hash == "aa")
    }

    @Test func eventsStoredBeforeThreadsMentionsAndModerationStillReadTheSame() throws {
        // Written before message.sent had threadRootId and mentions, and before member events had reason and until:
        // the same v1, read by both readers (the hand-written one and JSONDecoder) to the same values, with none of them.
        let sent =
            #"{"actorId":"u1","at":"2025-01-02T03:04:05.678Z","data":{"body":"hi","clientMsgId":null,"messageId":"m1","replyTo":"m0"},"id":"e1","roomId":"r","seq":4,"type":"message.sent","v":1,"prevHash":"p","hash":"h"}"#
        let removed =
            #"{"actorId":"u1","at":"2025-01-02T03:04:05.678Z","data":{"previousState":"joined","userId":"u2"},"id":"e2","roomId":"r","type":"member.removed","v":1,"prevHash":"p","hash":"h"}"#
        let message = try EventCodec.decode(sent)
        #expect(message.data == .messageSent(MessageSent(messageId: "m1", body: "hi", replyTo: "m0")))
        #expect(try EventCodec.makeDecoder().decode(Event.self, from: Data(sent.utf8)) == message)
        let removal = try EventCodec.decode(removed)
        #expect(removal.data == .memberRemoved(MemberChange(userId: "u2", previousState: .joined)))
        #expect(try EventCodec.makeDecoder().decode(Event.self, from: Data(removed.utf8)) == removal)
        // And a record of the guard state written before: no mute, not in a thread.
        #expect(RoomState.Member(encoded: "admin:joined:7") == RoomState.Member(role: .admin, state: .joined, since: 7))
        #expect(RoomState.MessageRecord(encoded: "u1|0") == RoomState.MessageRecord(senderId: "u1", deleted: false))
    }

    @Test func unknownTypesAndNewerVersionsAreErrorsNotCrashes() {
        #expect(throws: EventCodec.DecodeError.self) { try EventCodec.decode(#"{"type":"room.exploded","v":1}"#) }
        #expect(throws: EventCodec.DecodeError.self) {
            try EventCodec.decode(#"{"id":"e","type":"room.read","v":9,"at":"2025-01-01T00:00:00Z","actorId":"a","data":{"seq":1}}"#)
        }
        #expect(throws: (any Error).self) { try EventCodec.decode("not json") }
    }

    /// Builds a chain the way the append script does.
    func chain(_ count: Int) throws -> [String] {
        var previous = HashChain.genesis
        var stored: [String] = []
        for i in 0..<count {
            let event = Event(
                id: "e\(i)", at: at, actorId: "a", roomId: "r", data: .messageSent(MessageSent(messageId: "m\(i)", body: "b\(i)")))
            let body = try HashChain.body(of: event)
            let seq = Int64(i + 1)
            let hash = HashChain.link(prevHash: previous, digest: HashChain.digest(body), seq: seq)
            stored.append(body + HashChain.suffix(seq: seq, prevHash: previous, hash: hash))
            previous = hash
        }
        return stored
    }

    /// The index of the first entry that fails, or nil.
    func firstBreak(_ stored: [String]) -> Int? {
        var previous = HashChain.genesis
        for (i, json) in stored.enumerated() {
            switch HashChain.verify(stored: json, previousHash: previous) {
            case .success(let hash): previous = hash
            case .failure: return i
            }
        }
        return nil
    }

    @Test func theChainDetectsAlteredRemovedInsertedAndReorderedEvents() throws {
        let stored = try chain(6)
        #expect(firstBreak(stored) == nil)
        var altered = stored
        altered[2] = altered[2].replacingOccurrences(of: "\"b2\"", with: "\"B2\"")
        #expect(firstBreak(altered) == 2)
        var reseq = stored
        reseq[3] = reseq[3].replacingOccurrences(of: "\"seq\":4", with: "\"seq\":9")
        #expect(firstBreak(reseq) == 3)
        var removed = stored
        removed.remove(at: 3)
        #expect(firstBreak(removed) == 3)
        var inserted = stored
        inserted.insert(stored[1], at: 4)
        #expect(firstBreak(inserted) == 4)
        var reordered = stored
        reordered.swapAt(1, 2)
        #expect(firstBreak(reordered) == 1)
        var spaced = stored
        spaced[5] = spaced[5].replacingOccurrences(of: "{\"actorId\"", with: "{ \"actorId\"")
        #expect(firstBreak(spaced) == 5)
    }

    @Test func partitionsAreStableAndSpread() {
        let p = Partitioning(count: 8)
        #expect(p.partition(ofRoom: "room-1") == p.partition(ofRoom: "room-1"))
        let used = Set((0..<200).map { p.partition(ofRoom: "r\($0)") })
        #expect(used.count == 8)
        #expect(Partitioning(count: 1).partition(ofRoom: "anything") == 0)
    }
}
