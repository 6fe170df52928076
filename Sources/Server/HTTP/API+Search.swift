import Drivers
import EventLog
import Foundation
import Hummingbird
import Projections

/// Full-text search (CONTRACT section 8): `GET /v1/search?q=&roomId=&order=time|rank&limit=&before=`.
extension API {
    struct SearchJSON: Codable, Sendable {
        struct Result: Codable, Sendable {
            let message: MessageJSON
            let roomId: String
            let rank: Double
        }
        let results: [Result]
        let hasMore: Bool
        /// What to pass as `before` for the next page; null on the last.
        let next: String?
    }

    func registerSearch(_ routes: RouterGroup<ParleyContext>) {
        routes.get("search") { request, context in try await self.search(request, context) }
    }

    func search(_ request: Request, _ context: ParleyContext) async throws -> Reply<SearchJSON> {
        let viewer = try context.user()
        let parameters = request.uri.queryParameters
        guard let text = parameters["q"].map(String.init), !text.isEmpty else { throw APIError.invalid("q is required") }
        // Counted in scalars, as the document's maxLength counts: a grapheme can hold any number of combining marks.
        guard text.unicodeScalars.count <= 500 else { throw APIError.invalid("q is longer than 500 characters") }
        let limit = try Self.number("limit", request).map(Int.init) ?? 20
        guard (1...100).contains(limit) else { throw APIError.invalid("limit must be 1 to 100") }
        let order = try parameters["order"].map { value in
            guard let order = SearchReadModel.Order(rawValue: String(value)) else { throw APIError.invalid("order must be time or rank") }
            return order
        }
        let cursor = try parameters["before"].map { value in
            guard let cursor = SearchCursor(String(value)) else {
                throw APIError.invalid("before must be the `next` of an earlier page of results")
            }
            return cursor
        }
        let roomId = parameters["roomId"].map(String.init)
        if let roomId { try await requireMember(roomId, viewer) }
        // Only punctuation or spaces: no word, so nothing matches.
        guard let query = SearchQuery(text) else { return Reply(SearchJSON(results: [], hasMore: false, next: nil)) }
        try searchLimiter.check(viewer)
        try await searches.acquire(timeout: .seconds(5), store: .postgres)
        let page: SearchReadModel.Page
        do {
            defer { searches.release() }
            page = try await self.searchReadModel.search(
                query, userId: viewer, roomId: roomId, order: order ?? .time, after: cursor, limit: limit)
        } catch let error as DriverError where error.sqlState == "57014" {
            throw APIError(
                .serviceUnavailable, .serviceUnavailable,
                "the search took too long and was stopped; more words, or a roomId, make it faster", retryAfterMs: 1000)
        }
        // The read model's memberships trail the log by a moment: a member removed just now finds nothing more of the room.
        var joined: [String: Bool] = [:]
        for room in Set(page.hits.map(\.roomId)) { joined[room] = try await log.member(roomId: room, userId: viewer)?.state == .joined }
        var hits = page.hits.filter { joined[$0.roomId] == true }
        let records = try await messages.messages(ids: hits.map(\.messageId))
        // Deleted in the messages read model, not yet in the search one: not a result.
        hits.removeAll { records[$0.messageId]?.deleted == true }
        let results = hits.map { hit in
            // A message the messages read model has not projected yet reads from the search row.
            let message =
                records[hit.messageId].map { MessageJSON($0, viewer: viewer) }
                ?? MessageJSON(
                    id: hit.messageId, roomId: hit.roomId, seq: hit.seq, senderId: hit.senderId, body: hit.body, clientMsgId: nil,
                    sentAt: Date(timeIntervalSince1970: Double(hit.sentMs) / 1000),
                    editedAt: hit.editedMs.map { Date(timeIntervalSince1970: Double($0) / 1000) }, deleted: false, replyTo: nil,
                    edits: nil)
            return SearchJSON.Result(message: message, roomId: hit.roomId, rank: hit.rank)
        }
        // A page whose last hits were left out continues after the last one kept, so `next` never names a room the reader
        // is no longer in (those hits are met, and left out, again).
        var next = page.next
        if case .time = next, hits.count < page.hits.count {
            next = hits.last.map { .time(sentMs: $0.sentMs, roomId: $0.roomId, seq: $0.seq) }
        }
        return Reply(SearchJSON(results: results, hasMore: next != nil, next: next?.text))
    }
}
