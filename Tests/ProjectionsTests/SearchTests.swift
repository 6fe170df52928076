import EventLog
import Events
import Foundation
import Testing

@testable import Projections

@Suite("Search queries: words, prefixes, phrases and cursors")
struct SearchQueryTests {
    @Test func wordsArePrefixesAndQuotedWordsArePhrases() throws {
        let query = try #require(SearchQuery(#"Deploy "release train" friday"#))
        #expect(query.terms == [.word("Deploy"), .phrase(["release", "train"]), .word("friday")])
        #expect(query.tsquery == "'Deploy':* & ('release' <-> 'train') & 'friday':*")
        // A word of one or two characters matches only itself; a quoted single word is a word; a long word is cut.
        #expect(SearchQuery(#"a "b" cd efg"#)?.tsquery == "'a' & 'b' & 'cd' & 'efg':*")
        #expect(SearchQuery(String(repeating: "ȺȺ", count: 300))?.terms == [.word(String(repeating: "ȺȺ", count: 50))])
        // An unclosed quote runs to the end; a repeated term counts once.
        #expect(SearchQuery(#"go go "to the end"#)?.terms == [.word("go"), .phrase(["to", "the", "end"])])
    }

    @Test func nothingTypedReachesTheTsquerySyntax() throws {
        // Operators, colons, quotes and backslashes are separators; joiners stay inside a word, not at its ends.
        let query = try #require(SearchQuery(#"a&b | !c:* d'e \f (g) e-mail ann@example.com 3.14 -x- ..."#))
        #expect(
            query.terms == [
                .word("a"), .word("b"), .word("c"), .word("d"), .word("e"), .word("f"), .word("g"), .word("e-mail"),
                .word("ann@example.com"), .word("3.14"), .word("x"),
            ])
        #expect(!query.tsquery.contains("\\") && !query.tsquery.contains("!") && !query.tsquery.contains("|"))
        #expect(SearchQuery("  !!! ::: \"\" ") == nil)
        #expect(SearchQuery("") == nil)
        // Letters of any script, as typed (PostgreSQL lower-cases them as it did the messages); at most 16 terms.
        #expect(SearchQuery("Ünïcode ΣΟΦΙΑ, Привет!")?.terms == [.word("Ünïcode"), .word("ΣΟΦΙΑ"), .word("Привет")])
        #expect(SearchQuery((1...40).map { "w\($0)" }.joined(separator: " "))?.terms.count == SearchQuery.maxTerms)
    }

    @Test func cursorsRoundTripAndAnythingElseIsRefused() {
        for cursor in [SearchCursor.time(sentMs: 1_796_000_000_123, roomId: "r-a.b.c", seq: 42), .rank(offset: 40)] {
            #expect(SearchCursor(cursor.text) == cursor)
        }
        for bad in ["", "t", "t.1.2", "t.x.2.room", "t.1.2.", "r.-1", "r.x", "q.1", "r.1.2"] { #expect(SearchCursor(bad) == nil, "\(bad)") }
    }
}

@Suite("The search projector against real PostgreSQL")
struct SearchProjectorTests {
    /// Projects the log so far into the metadata and search read models (straight from the streams).
    func project(_ f: ProjectionFixture) async throws {
        let rebuild = ProjectionRebuild(log: f.log, scheduler: f.scheduler)
        try await rebuild.run(f.metadata)
        try await rebuild.run(f.search)
    }

    func found(_ page: SearchReadModel.Page) -> [String] { page.hits.map(\.messageId) }

    @Test func findsWordsPrefixesAndPhrasesInTheReadersRoomsOnlyWithEditsAndDeletions() async throws {
        let f = try await ProjectionFixture(partitions: 2)
        let ids = try await f.workload()  // club: c1 "hello!!" (edited twice), c2 "hi bea", c3 deleted; d1 "psst" ada→cyd
        let (ada, bea, cyd) = (ids["ada"]!, ids["bea"]!, ids["cyd"]!)
        try await f.log.execute(
            .send(
                roomId: "club", messageId: "s1", body: "The deployment of the release train is on Friday", clientMsgId: nil, replyTo: nil),
            actor: ada)
        try await f.log.execute(
            .send(roomId: "club", messageId: "s2", body: "train the release, not the deployment", clientMsgId: nil, replyTo: nil),
            actor: bea)
        try await f.log.execute(
            .send(roomId: "club", messageId: "s3", body: "Привет, мир: ünïcode", clientMsgId: nil, replyTo: nil), actor: bea)
        try await f.log.execute(.send(roomId: "club", messageId: "s4", body: "typo here", clientMsgId: nil, replyTo: nil), actor: ada)
        try await f.log.execute(.edit(roomId: "club", messageId: "s4", body: "fixed wording"), actor: ada)
        try await f.log.execute(.send(roomId: "club", messageId: "s5", body: "deploy soon", clientMsgId: nil, replyTo: nil), actor: ada)
        try await f.log.execute(.delete(roomId: "club", messageId: "s5"), actor: ada)
        try await project(f)
        let search = SearchReadModel(postgres: f.postgres, schema: f.schema)
        func find(_ q: String, as user: String, order: SearchReadModel.Order = .time) async throws -> [String] {
            found(try await search.search(try #require(SearchQuery(q)), userId: user, order: order))
        }

        // A word finds every message holding it (or a word it begins), newest first; a phrase only the words in order.
        #expect(try await find("deploy", as: bea) == ["s2", "s1"])
        #expect(try await find("release train", as: bea) == ["s2", "s1"])
        #expect(try await find(#""release train""#, as: bea) == ["s1"])
        #expect(try await find("RELEASE fri", as: bea) == ["s1"])
        #expect(try await find("мир", as: bea) == ["s3"])
        #expect(try await find("ПРИВЕТ", as: bea) == ["s3"])
        #expect(try await find("unicode", as: bea) == [], "no accent folding: ü is not u")
        // The latest edit is what is found; a deleted message is not found.
        #expect(try await find("hello", as: bea) == ["c1"])
        #expect(try await find("typo", as: bea) == [])
        #expect(try await find("wording", as: bea) == ["s4"])
        #expect(try await find("oops", as: ada) == [])
        #expect(try await find("soon", as: ada) == [])
        // Only rooms where the reader is a joined member: cyd is invited to club, not joined; the direct room is his.
        #expect(try await find("deployment", as: cyd) == [])
        #expect(try await find("psst", as: cyd) == ["d1"])
        #expect(try await find("psst", as: bea) == [])
        // One room only, when asked.
        #expect(found(try await search.search(try #require(SearchQuery("psst")), userId: ada, roomId: "club")) == [])

        // By rank: the message with the words closest together and most often comes first.
        let ranked = try await search.search(try #require(SearchQuery("release train deployment")), userId: bea, order: .rank)
        #expect(ranked.hits.count == 2 && ranked.hits[0].rank >= ranked.hits[1].rank)

        // Bea leaves: from then on she finds nothing of club, old or new.
        try await f.log.execute(.leave(roomId: "club"), actor: bea)
        try await f.log.execute(
            .send(roomId: "club", messageId: "s6", body: "deployment after bea left", clientMsgId: nil, replyTo: nil), actor: ada)
        try await project(f)
        #expect(try await find("deployment", as: bea) == [])
        #expect(try await find("deployment", as: ada) == ["s6", "s2", "s1"])
        try await f.cleanUp()
    }

    @Test func pagesByTimeAndByRankNeitherRepeatNorSkip() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        let ada = ids["ada"]!
        for n in 1...25 {
            let body = "needle number \(n)" + String(repeating: " needle", count: n % 4)
            try await f.log.execute(.send(roomId: "club", messageId: "n\(n)", body: body, clientMsgId: nil, replyTo: nil), actor: ada)
        }
        try await project(f)
        let search = SearchReadModel(postgres: f.postgres, schema: f.schema)
        let query = try #require(SearchQuery("needle"))
        for order in SearchReadModel.Order.allCases {
            var seen: [SearchReadModel.Hit] = []
            var cursor: SearchCursor?
            var pages = 0
            repeat {
                let page = try await search.search(query, userId: ada, order: order, after: cursor, limit: 10)
                seen += page.hits
                cursor = page.next
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3, "\(order)")
            #expect(Set(seen.map(\.messageId)) == Set((1...25).map { "n\($0)" }) && seen.count == 25, "\(order)")
            switch order {
            case .time: #expect(seen.map(\.seq) == seen.map(\.seq).sorted(by: >))
            case .rank: #expect(seen.map(\.rank) == seen.map(\.rank).sorted(by: >))
            }
        }
        try await f.cleanUp()
    }

    @Test func aBatchAppliedTwiceOrAfterAFenceLeavesTheSameRows() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        _ = try await f.workload()
        let events = try await f.log.read(partition: 0, count: 10_000)
        try await f.search.apply(events, partition: 0, epoch: 1)
        let rows = "SELECT room_id, message_id, body, edited_ms FROM \(f.schema).search_messages ORDER BY 1, 2"
        let once = try await f.postgres.query(rows).map(\.values)
        try await f.search.apply(events, partition: 0, epoch: 1)
        #expect(try await f.postgres.query(rows).map(\.values) == once)
        #expect(once.count == 3, "c1, c2 and d1: c3 was deleted")
        try await f.search.fence(partition: 0, epoch: 2)
        await #expect(throws: ProjectionFenced.self) { try await f.search.apply(events, partition: 0, epoch: 1) }
        #expect(try await f.search.checkpoint(partition: 0) == events.last?.entryID)
        try await f.cleanUp()
    }
}
