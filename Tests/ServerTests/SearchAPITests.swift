import Foundation
import TestSupport
import Testing

/// `GET /v1/search` on a real server: what members find, what an outsider and a removed member do not, and the refusals.
@Suite("Search with real clients")
struct SearchAPITests {
    typealias Room = ReactionsAndPinsTests.Room

    func ids(_ result: ServerProcess.HTTPResult) -> [String] {
        (result["results"] as? [[String: Any]] ?? []).compactMap { ($0["message"] as? [String: Any])?["id"] as? String }
    }

    @Test func membersFindTheirRoomsMessagesAndARemovedMemberFindsNothingMore() async throws {
        let r = try await Room.make("srch")
        let eve = try await r.s.register("srcheve")
        let first = try await r.send(r.ann, "The quarterly roadmap review is on Thursday")
        let second = try await r.send(r.bob, "roadmaps are overrated, says bob")
        let edited = try await r.send(r.cat, "a typo in the roadmpa")
        #expect(
            try await r.s.request("PATCH", "/v1/rooms/\(r.id)/messages/\(edited)", token: r.cat.token, body: ["body": "fixed the roadmap"])
                .status == 200)
        let gone = try await r.send(r.ann, "roadmap secret, deleted")
        #expect(try await r.s.request("DELETE", "/v1/rooms/\(r.id)/messages/\(gone)", token: r.ann.token).status == 200)

        // Newest first, each result with its message as history has it, reactions included.
        let found = try await r.s.until("/v1/search?q=roadmap", token: r.bob.token) { self.ids($0) == [edited, second, first] }
        let top = try #require((found["results"] as? [[String: Any]])?.first)
        #expect(top["roomId"] as? String == r.id && (top["rank"] as? Double ?? 0) > 0)
        #expect((top["message"] as? [String: Any])?["body"] as? String == "fixed the roadmap")
        #expect(found["hasMore"] as? Bool == false)
        // A phrase, a prefix, and a miss.
        #expect(ids(try await r.s.request("GET", "/v1/search?q=%22roadmap%20review%22", token: r.cat.token)) == [first])
        #expect(ids(try await r.s.request("GET", "/v1/search?q=quarter&roomId=\(r.id)", token: r.cat.token)) == [first])
        #expect(ids(try await r.s.request("GET", "/v1/search?q=typo", token: r.cat.token)) == [])
        #expect(ids(try await r.s.request("GET", "/v1/search?q=secret", token: r.ann.token)) == [])
        // Pages: two at a time, by rank, then on from `next`.
        let page1 = try await r.s.request("GET", "/v1/search?q=roadmap&order=rank&limit=2", token: r.ann.token)
        let next = try #require(page1["next"] as? String)
        #expect(ids(page1).count == 2 && page1["hasMore"] as? Bool == true)
        let page2 = try await r.s.request("GET", "/v1/search?q=roadmap&order=rank&limit=2&before=\(next)", token: r.ann.token)
        #expect(Set(ids(page1) + ids(page2)) == [first, second, edited] && page2["hasMore"] as? Bool == false)

        // An outsider finds nothing and may not name the room.
        #expect(ids(try await r.s.request("GET", "/v1/search?q=roadmap", token: eve.token)) == [])
        let outsider = try await r.s.request("GET", "/v1/search?q=roadmap&roomId=\(r.id)", token: eve.token)
        #expect(outsider.status == 403 && outsider.error == "not_a_member")

        // Ann removes Cat: at once Cat finds nothing of the room, old or new.
        #expect(try await r.s.request("DELETE", "/v1/rooms/\(r.id)/members/\(r.cat.id)", token: r.ann.token).status == 200)
        let after = try await r.send(r.ann, "roadmap after cat left")
        #expect(ids(try await r.s.request("GET", "/v1/search?q=roadmap", token: r.cat.token)) == [])
        _ = try await r.s.until("/v1/search?q=roadmap", token: r.bob.token) { self.ids($0).first == after }
        #expect(ids(try await r.s.request("GET", "/v1/search?q=roadmap", token: r.cat.token)) == [])
        try await r.close()
    }

    @Test func badQueriesGetTheContractsErrorAndNothingElse() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("srchbad")
        for query in [
            "", "?q=", "?q=\(String(repeating: "x", count: 501))", "?q=a&limit=0", "?q=a&limit=101", "?q=a&order=best",
            "?q=a&before=nonsense", "?q=a&before=t.1.2",
        ] {
            let result = try await s.request("GET", "/v1/search\(query)", token: ann.token)
            #expect(result.status == 400 && result.error == "invalid_request", "\(query): \(result.status) \(result.text)")
        }
        #expect(try await s.request("GET", "/v1/search?q=a").status == 401)
        // Only punctuation: no word to look for, so nothing is found.
        let none = try await s.request("GET", "/v1/search?q=%21%21%21", token: ann.token)
        #expect(none.status == 200 && ids(none) == [] && none["hasMore"] as? Bool == false)
        #expect(try await s.request("GET", "/v1/search?q=a&before=t.1.2.r%00x", token: ann.token).error == "invalid_request")
        #expect(try await s.request("GET", "/v1/search?q=a&roomId=nope", token: ann.token).status == 404)
        // Anything a user types is only words: no tsquery syntax error reaches them.
        for text in ["a & | ! b", "':*'", "\\\\", "(((", "\"\"\"", "<->", "'; DROP TABLE users; --"] {
            let q = text.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let result = try await s.request("GET", "/v1/search?q=\(q)", token: ann.token)
            #expect(result.status == 200 || result.error == "invalid_request", "\(text): \(result.status) \(result.text)")
        }
        // Searching in a burst is limited per user (10 at once, then 1 a second), with a time to come back. Twenty at once:
        // one after another, a loaded machine refilled the bucket between them and none was limited.
        let answers = try await withThrowingTaskGroup(of: ServerProcess.HTTPResult.self) { group in
            for _ in 0..<20 { group.addTask { try await s.request("GET", "/v1/search?q=again", token: ann.token) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0.status == 200 || $0.status == 429 }, "\(answers.map(\.status))")
        let limited = answers.first { $0.status == 429 }
        #expect(limited?.error == "rate_limited" && limited?.retryAfter != nil, "\(limited?.text ?? "never limited")")
        try await s.cleanUp()
    }
}
