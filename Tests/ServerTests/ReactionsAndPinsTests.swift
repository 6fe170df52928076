import Foundation
import TestSupport
import Testing

/// Reactions, pins and "who read what" with real clients: three users in a group, the events each one's WebSocket gets,
/// the refusals, and what history, the pins list and the receipts list say afterwards.
@Suite("Reactions, pins and receipts with real clients")
struct ReactionsAndPinsTests {
    /// A group of ann (owner), bob and cat (members), each with a WebSocket open.
    struct Room {
        let s: ServerProcess
        let id: String
        let ann: (id: String, token: String)
        let bob: (id: String, token: String)
        let cat: (id: String, token: String)
        let annWS: WSTestClient
        let bobWS: WSTestClient
        let catWS: WSTestClient

        static func make(_ prefix: String) async throws -> Room {
            let s = try await ServerProcess()
            let ann = try await s.register("\(prefix)ann")
            let bob = try await s.register("\(prefix)bob")
            let cat = try await s.register("\(prefix)cat")
            let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "rx", "invite": [bob.id, cat.id]])
            let id = try #require(created["room", "id"] as? String)
            for user in [bob, cat] { #expect(try await s.request("POST", "/v1/rooms/\(id)/join", token: user.token).status == 200) }
            let sockets = [ann, bob, cat].map { WSTestClient(port: s.port, token: $0.token) }
            for ws in sockets { _ = try await ws.next(type: "hello") }
            return Room(s: s, id: id, ann: ann, bob: bob, cat: cat, annWS: sockets[0], bobWS: sockets[1], catWS: sockets[2])
        }

        func send(_ user: (id: String, token: String), _ body: String) async throws -> String {
            let sent = try await s.request("POST", "/v1/rooms/\(id)/messages", token: user.token, body: ["body": body])
            #expect(sent.status == 201)
            return try #require(sent["message", "id"] as? String)
        }

        /// The next event frame of `type` on `ws` (frames of other types and events before it are skipped).
        func event(_ ws: WSTestClient, _ type: String) async throws -> [String: Any] {
            while true {
                let frame = try await ws.next(type: "event")
                if frame["event", "type"] as? String == type { return frame }
            }
        }

        func close() async throws {
            for ws in [annWS, bobWS, catWS] { ws.close() }
            try await s.cleanUp()
        }
    }

    static func encoded(_ emoji: String) -> String {
        emoji.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? emoji
    }

    @Test func reactionsReachEveryMemberAndHistoryCountsThemPerReader() async throws {
        let r = try await Room.make("rx")
        let message = try await r.send(r.bob, "lunch?")
        let path = "/v1/rooms/\(r.id)/messages/\(message)/reactions"
        let first = try await r.s.request("POST", path, token: r.ann.token, body: ["emoji": "👍"])
        #expect(first.status == 201 && first["reaction", "emoji"] as? String == "👍")
        // Every member's WebSocket gets it, with who reacted.
        for ws in [r.annWS, r.bobWS, r.catWS] {
            let frame = try await r.event(ws, "reaction.added")
            #expect(frame["event", "actorId"] as? String == r.ann.id)
            #expect(frame["event", "data", "messageId"] as? String == message && frame["event", "data", "emoji"] as? String == "👍")
        }
        // Over the WebSocket too: no answer but the event, and an error frame with the ref for a bad one.
        try r.catWS.send(["type": "react", "roomId": r.id, "messageId": message, "emoji": "🎉"])
        let byWS = try await r.event(r.bobWS, "reaction.added")
        #expect(byWS["event", "actorId"] as? String == r.cat.id && byWS["event", "data", "emoji"] as? String == "🎉")
        try r.catWS.send(["type": "react", "roomId": r.id, "messageId": message, "emoji": "🎉", "remove": true])
        #expect(try await r.event(r.bobWS, "reaction.removed")["event", "data", "emoji"] as? String == "🎉")
        try r.catWS.send(["type": "react", "roomId": r.id, "messageId": "nope", "emoji": "🎉", "ref": "x1"])
        let refused = try await r.catWS.next(type: "error")
        #expect(refused["code"] as? String == "not_found" && refused["ref"] as? String == "x1")
        // The same again: 200, nothing appended.
        #expect(try await r.s.request("POST", path, token: r.ann.token, body: ["emoji": "👍"]).status == 200)
        #expect(try await r.s.request("POST", path, token: r.cat.token, body: ["emoji": "👍"]).status == 201)
        #expect(try await r.s.request("POST", path, token: r.cat.token, body: ["emoji": "👨‍👩‍👧"]).status == 201)
        // History: counts per emoji in the order they came, `me` per reader.
        func reactions(_ token: String) async throws -> [[String: Any]] {
            let page = try await r.s.until("/v1/rooms/\(r.id)/messages", token: token) { result in
                let list = ((result["messages"] as? [[String: Any]])?.first?["reactions"] as? [[String: Any]]) ?? []
                return list.count == 2 && (list.first?["count"] as? Int) == 2
            }
            return try #require((page["messages"] as? [[String: Any]])?.first?["reactions"] as? [[String: Any]])
        }
        let seenByAnn = try await reactions(r.ann.token)
        #expect(seenByAnn.map { $0["emoji"] as? String } == ["👍", "👨‍👩‍👧"])
        #expect(seenByAnn.map { $0["count"] as? Int } == [2, 1])
        #expect(seenByAnn.map { $0["me"] as? Bool } == [true, false])
        let seenByBob = try await reactions(r.bob.token)
        #expect(seenByBob.map { $0["me"] as? Bool } == [false, false])
        // Taking one back, with the emoji URL-encoded; again: 200 and nothing appended.
        let removed = try await r.s.request("DELETE", path + "/" + Self.encoded("👍"), token: r.ann.token)
        #expect(removed.status == 200 && removed["reaction", "emoji"] as? String == "👍")
        let frame = try await r.event(r.bobWS, "reaction.removed")
        #expect(frame["event", "actorId"] as? String == r.ann.id && frame["event", "data", "emoji"] as? String == "👍")
        #expect(try await r.s.request("DELETE", path + "/" + Self.encoded("👍"), token: r.ann.token).status == 200)
        _ = try await r.s.until("/v1/rooms/\(r.id)/messages", token: r.ann.token) { result in
            let list = ((result["messages"] as? [[String: Any]])?.first?["reactions"] as? [[String: Any]]) ?? []
            return list.first?["count"] as? Int == 1 && list.first?["me"] as? Bool == false
        }
        try await r.close()
    }

    @Test func reactionsAreRefusedToOutsidersOnDeletedMessagesAndWithBadEmoji() async throws {
        let r = try await Room.make("rxno")
        let eve = try await r.s.register("rxnoeve")
        let message = try await r.send(r.bob, "soon gone")
        let path = "/v1/rooms/\(r.id)/messages/\(message)/reactions"
        #expect(try await r.s.request("POST", path, token: eve.token, body: ["emoji": "👍"]).error == "not_a_member")
        for bad in ["", "two words", String(repeating: "x", count: 33), "tab\there"] {
            let refused = try await r.s.request("POST", path, token: r.ann.token, body: ["emoji": bad])
            #expect(refused.status == 400 && refused.error == "invalid_request", "\(bad)")
        }
        #expect(try await r.s.request("POST", path, token: r.ann.token, body: ["nope": 1]).status == 400)
        let missing = "/v1/rooms/\(r.id)/messages/nope/reactions"
        #expect(try await r.s.request("POST", missing, token: r.ann.token, body: ["emoji": "👍"]).error == "not_found")
        // 20 different ones per person and message, not 21.
        for n in 0..<20 { #expect(try await r.s.request("POST", path, token: r.cat.token, body: ["emoji": "e\(n)"]).status == 201) }
        let over = try await r.s.request("POST", path, token: r.cat.token, body: ["emoji": "e20"])
        #expect(over.status == 409 && over.error == "conflict")
        #expect(try await r.s.request("DELETE", "/v1/rooms/\(r.id)/messages/\(message)", token: r.bob.token).status == 200)
        let onDeleted = try await r.s.request("POST", path, token: r.ann.token, body: ["emoji": "👍"])
        #expect(onDeleted.status == 409 && onDeleted.error == "conflict")
        // A deleted message reads without its reactions.
        let page = try await r.s.until("/v1/rooms/\(r.id)/messages", token: r.ann.token) { result in
            (result["messages"] as? [[String: Any]])?.first?["deleted"] as? Bool == true
        }
        #expect(((page["messages"] as? [[String: Any]])?.first?["reactions"] as? [Any])?.isEmpty == true)
        try await r.close()
    }

    @Test func pinsFollowRolesAndTheLimitAndADeletedMessageLeavesThem() async throws {
        let r = try await Room.make("pin")
        let message = try await r.send(r.bob, "the plan")
        let pinPath = "/v1/rooms/\(r.id)/pins/\(message)"
        let byMember = try await r.s.request("PUT", pinPath, token: r.bob.token)
        #expect(byMember.status == 403 && byMember.error == "forbidden")
        #expect(try await r.s.request("PUT", pinPath, token: r.ann.token).status == 201)
        #expect(try await r.s.request("PUT", pinPath, token: r.ann.token).status == 200)  // pinned already
        for ws in [r.annWS, r.bobWS, r.catWS] {
            let frame = try await r.event(ws, "message.pinned")
            #expect(frame["event", "actorId"] as? String == r.ann.id && frame["event", "data", "messageId"] as? String == message)
        }
        let pins = try await r.s.until("/v1/rooms/\(r.id)/pins", token: r.cat.token) { ($0["pins"] as? [Any])?.count == 1 }
        let pin = try #require((pins["pins"] as? [[String: Any]])?.first)
        #expect(pin["message", "body"] as? String == "the plan" && pin["pinnedBy"] as? String == r.ann.id && pin["pinnedAt"] is String)
        let outsider = try await r.s.register("pineve")
        #expect(try await r.s.request("GET", "/v1/rooms/\(r.id)/pins", token: outsider.token).error == "not_a_member")
        // An admin may unpin; then 50 pins fill the room and the 51st is refused.
        #expect(
            try await r.s.request("PUT", "/v1/rooms/\(r.id)/members/\(r.bob.id)/role", token: r.ann.token, body: ["role": "admin"]).status
                == 200)
        #expect(try await r.s.request("DELETE", pinPath, token: r.bob.token).status == 200)
        for ws in [r.annWS, r.catWS] { #expect(try await r.event(ws, "message.unpinned")["event", "actorId"] as? String == r.bob.id) }
        var pinned: [String] = []
        for n in 0..<50 {
            let id = try await r.send(r.cat, "pin me \(n)")
            #expect(try await r.s.request("PUT", "/v1/rooms/\(r.id)/pins/\(id)", token: r.bob.token).status == 201)
            pinned.append(id)
        }
        let over = try await r.s.request("PUT", pinPath, token: r.ann.token)
        #expect(over.status == 409 && over.error == "conflict")
        // Deleting a pinned message takes it off the pins, in the same step: the room has room for one more.
        #expect(try await r.s.request("DELETE", "/v1/rooms/\(r.id)/messages/\(pinned[7])", token: r.cat.token).status == 200)
        let unpinned = try await r.event(r.annWS, "message.unpinned")
        #expect(unpinned["event", "data", "messageId"] as? String == pinned[7] && unpinned["event", "actorId"] as? String == r.cat.id)
        let deleted = try await r.event(r.annWS, "message.deleted")
        #expect(deleted["event", "data", "messageId"] as? String == pinned[7])
        #expect(try await r.s.request("PUT", pinPath, token: r.ann.token).status == 201)
        let list = try await r.s.until("/v1/rooms/\(r.id)/pins", token: r.ann.token) { result in
            let ids = ((result["pins"] as? [[String: Any]]) ?? []).compactMap { $0["message", "id"] as? String }
            return ids.count == 50 && ids.first == message && !ids.contains(pinned[7])
        }
        #expect((list["pins"] as? [Any])?.count == 50)
        try await r.close()
    }

    @Test func receiptsSayWhoReadUpToWhereAndNeverMoveBack() async throws {
        let r = try await Room.make("rcpt")
        for n in 1...3 { _ = try await r.send(r.ann, "m\(n)") }
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/read", token: r.bob.token, body: ["seq": 3]).status == 200)
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/read", token: r.cat.token, body: ["seq": 1]).status == 200)
        let list = try await r.s.until("/v1/rooms/\(r.id)/receipts", token: r.cat.token) { result in
            ((result["receipts"] as? [[String: Any]]) ?? []).count == 3
        }
        let receipts = try #require(list["receipts"] as? [[String: Any]])
        let seqs = Dictionary(
            uniqueKeysWithValues: receipts.compactMap { r in (r["userId"] as? String).map { ($0, r["seq"] as? Int ?? -1) } })
        #expect(seqs == [r.ann.id: 3, r.bob.id: 3, r.cat.id: 1])  // ann sent all three: she has read them
        #expect(receipts.allSatisfy { $0["at"] is String })
        #expect(receipts.last?["userId"] as? String == r.cat.id)  // furthest first
        // An older receipt answers 200 and moves nothing.
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/read", token: r.bob.token, body: ["seq": 1]).status == 200)
        #expect(try await r.s.request("POST", "/v1/rooms/\(r.id)/read", token: r.cat.token, body: ["seq": 2]).status == 200)
        let after = try await r.s.until("/v1/rooms/\(r.id)/receipts", token: r.ann.token) { result in
            ((result["receipts"] as? [[String: Any]]) ?? []).contains { $0["userId"] as? String == r.cat.id && $0["seq"] as? Int == 2 }
        }
        let bob = ((after["receipts"] as? [[String: Any]]) ?? []).first { $0["userId"] as? String == r.bob.id }
        #expect(bob?["seq"] as? Int == 3)
        let outsider = try await r.s.register("rcpteve")
        #expect(try await r.s.request("GET", "/v1/rooms/\(r.id)/receipts", token: outsider.token).error == "not_a_member")
        try await r.close()
    }
}
