import Foundation
import Testing

@testable import Events

/// The hand-written reader of stored events (`EventCodec.read`) against JSONDecoder: the
/// same event for every type and for awkward strings, in both stored layouts (the log's
/// body plus the script's suffix, and JSONEncoder's sorted keys); nil, never a different
/// event, for what it does not take.
@Suite("Hand-written event reader")
struct EventReaderTests {
    static let texts = [
        "plain", "", "quote \" backslash \\ slash /", "new\nline\ttab\r\u{1}\u{8}\u{c}\u{1f}", "émoji 👋🏽 中文 \u{10FFFF}", "nul \u{0} end",
    ]

    static func samples(_ text: String) -> [EventData] {
        [
            .userRegistered(UserRegistered(userId: "u", username: text, displayName: text, passwordHash: "$2b$x")),
            .roomCreated(RoomCreated(kind: .group, name: text)), .roomCreated(RoomCreated(kind: .direct, members: ["a", text])),
            .roomCreated(RoomCreated(kind: .group)),
            .memberInvited(MemberChange(userId: text, role: .member)), .inviteDeclined(MemberChange(userId: "u")),
            .memberJoined(MemberChange(userId: "u", role: .owner)), .memberLeft(MemberChange(userId: "u")),
            .memberRemoved(MemberChange(userId: "u")), .memberRemoved(MemberChange(userId: "u", previousState: .joined)),
            .memberRoleChanged(MemberChange(userId: "u", role: .admin)),
            .roomRenamed(RoomRenamed(name: text)),
            .messageSent(MessageSent(messageId: "m", body: text, clientMsgId: text, replyTo: "m0")),
            .messageSent(MessageSent(messageId: "m", body: text)),
            .messageEdited(MessageEdited(messageId: "m", body: text)), .messageDeleted(MessageDeleted(messageId: "m")),
            .roomRead(RoomRead(seq: 7)),
        ]
    }

    @Test(arguments: texts)
    func readsWhatJSONDecoderReads(text: String) throws {
        let at = Date(timeIntervalSince1970: 1_764_000_000.123)
        for data in Self.samples(text) {
            for roomId in ["r", nil] as [String?] {
                let event = Event(id: "e1", at: at, actorId: text, roomId: roomId, data: data)
                // As the log stores it: the body, then what the append script adds.
                let logged =
                    EventCodec.body(event) + HashChain.suffix(seq: data.type == .messageSent ? 42 : nil, prevHash: "p0", hash: "h1")
                // As JSONEncoder writes it (sorted keys), with and without the appended fields.
                var full = event
                full.seq = 3
                full.hash = "h"
                full.prevHash = "p"
                for json in [logged, try EventCodec.encode(full), try EventCodec.encode(event)] {
                    let expected = try EventCodec.makeDecoder().decode(Event.self, from: Data(json.utf8))
                    let read = try #require(EventCodec.read(json), "not read: \(json)")
                    #expect(read == expected, "\(json)")
                }
            }
        }
    }

    @Test func whitespaceEscapesAndNullsAreRead() throws {
        let json =
            #" { "id" : "e\u0031" , "v":1, "type":"message.sent", "at":"2025-01-02T03:04:05.678Z", "actorId":"a\/b", "roomId":null, "seq":null, "data":{ "body":"\ud83d\udc4b \u00e9", "messageId":"m", "clientMsgId":null }, "hash":null } "#
        let read = try #require(EventCodec.read(json))
        #expect(read == (try EventCodec.makeDecoder().decode(Event.self, from: Data(json.utf8))))
        #expect(read.id == "e1" && read.actorId == "a/b" && read.roomId == nil)
        #expect(read.data == .messageSent(MessageSent(messageId: "m", body: "👋 é")))
    }

    /// What it gives up on is left to JSONDecoder, which upcasts, ignores unknown fields or
    /// explains the error: `decode` still answers as before.
    @Test(arguments: [
        // v1: upcast
        #"{"actorId":"u1","at":"2025-01-02T03:04:05.678Z","data":{"passwordHash":"h","userId":"u1","username":"ann"},"id":"e1","type":"user.registered","v":1}"#,
        // unknown data field
        #"{"actorId":"a","at":"2025-01-02T03:04:05.678Z","data":{"seq":1,"extra":"x"},"id":"e","type":"room.read","v":1}"#,
        #"{"actorId":"a","at":"2025-01-02T03:04:05.678Z","data":{"seq":1},"id":"e","type":"room.read","v":1,"later":true}"#,  // unknown key
        #"{"actorId":"a","at":"2025-01-02T03:04:05.678Z","data":{"seq":1.0},"id":"e","type":"room.read","v":1}"#,  // not an integer
        // repeated key
        #"{"actorId":"a","actorId":"b","at":"2025-01-02T03:04:05.678Z","data":{"seq":1},"id":"e","type":"room.read","v":1}"#,
        #"{"actorId":"a","at":"2025-01-02T03:04:05.678Z","data":{"seq":1},"id":"e","type":"room.read","v":9}"#,  // newer version
        #"{"actorId":"a","at":"yesterday","data":{"seq":1},"id":"e","type":"room.read","v":1}"#,  // bad time
        #"{"actorId":"\ud800","at":"2025-01-02T03:04:05.678Z","data":{"seq":1},"id":"e","type":"room.read","v":1}"#,  // lone surrogate
        // unknown role
        #"{"actorId":"a","at":"2025-01-02T03:04:05.678Z","data":{"role":"king","userId":"u"},"id":"e","type":"member.joined","v":1}"#,
        #"{"actorId":"a","at":"2025-01-02T03:04:05.678Z","data":{"seq":1},"id":"e","type":"room.read","v":1} trailing"#,
        #"{"actorId":"a","at":"2025-01-02T03:04:05.678Z","data":{"seq":1},"id":"e","type":"room.read","v":1"#,  // cut off
        "not json", "", "{}",
    ])
    func givesUpInsteadOfGuessing(json: String) {
        #expect(EventCodec.read(json) == nil)
        // decode answers exactly as JSONDecoder alone would.
        let byDecoder = Result { try EventCodec.decode(Data(json.utf8)) }
        let byDecode = Result { try EventCodec.decode(json) }
        switch (byDecoder, byDecode) {
        case (.success(let a), .success(let b)): #expect(a == b)
        case (.failure, .failure): break
        default: Issue.record("decode and JSONDecoder disagree on \(json)")
        }
    }
}

/// The byte-by-byte reader of the log's times against Foundation's ISO 8601 parser.
@Suite("Hand-written timestamp reader")
struct TimestampReaderTests {
    @Test func readsWhatFoundationReads() throws {
        var generator = SystemRandomNumberGenerator()
        // Around leap days and centuries, and random times from 1583 to 9999.
        var samples: [Int64] = [0, -1, 1, 951_782_400_000, 951_868_799_999, 4_107_542_400_000, -12_212_553_600_000]
        for _ in 0..<5000 { samples.append(Int64.random(in: -12_212_553_600_000...253_402_300_799_999, using: &generator)) }
        for ms in samples {
            let text = formatTimestamp(Date(timeIntervalSince1970: Double(ms) / 1000))
            let foundation = try #require(parseTimestampWithFoundation(text), "\(text)")
            #expect(utcMilliseconds(text).map { Date(timeIntervalSince1970: Double($0) / 1000) } == foundation, "\(text)")
            // Without the fraction, and with other numbers of fraction digits.
            let whole = String(text.prefix(19)) + "Z"
            #expect(
                utcMilliseconds(whole).map { Date(timeIntervalSince1970: Double($0) / 1000) } == parseTimestampWithFoundation(whole),
                "\(whole)")
            for fraction in [".5", ".12", ".123456"] {
                let other = String(text.prefix(19)) + fraction + "Z"
                #expect(
                    utcMilliseconds(other).map { Date(timeIntervalSince1970: Double($0) / 1000) } == parseTimestampWithFoundation(other),
                    "\(other)")
            }
        }
    }

    @Test(arguments: [
        "2025-02-29T00:00:00Z", "2025-13-01T00:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T00:00:60Z",
        "2025-01-01 00:00:00Z", "2025-01-01T00:00:00+01:00", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00.1x2Z",
        "0000-01-01T00:00:00Z", "1582-10-20T00:00:00Z", "yesterday", "",
    ])
    func leavesTheRestToFoundation(text: String) {
        #expect(utcMilliseconds(text) == nil)
        // parseTimestamp then answers as Foundation's parser does.
        #expect(parseTimestamp(text) == parseTimestampWithFoundation(text))
    }
}

/// The byte-by-byte writer of the log's times against Foundation's ISO 8601 formatter.
@Suite("Hand-written timestamp writer")
struct TimestampWriterTests {
    @Test func writesWhatFoundationWrites() {
        var generator = SystemRandomNumberGenerator()
        var samples: [Int64] = [0, -1, 1, 999, -999, 951_782_400_000, 951_868_799_999, -12_212_553_600_000, 253_402_300_799_999]
        for _ in 0..<5000 { samples.append(Int64.random(in: -12_212_553_600_000...253_402_300_799_999, using: &generator)) }
        for ms in samples {
            #expect(formatUTCMilliseconds(ms) == formatTimestampWithFoundation(ms), "\(ms)")
        }
        // Outside the years 1583–9999 Foundation writes it (its calendar is Julian before 1583).
        #expect(formatUTCMilliseconds(-12_212_553_600_001) == nil)
        #expect(formatUTCMilliseconds(253_402_300_800_000) == nil)
    }
}
