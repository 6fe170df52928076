import Events
import Hummingbird

/// Messages: send (to a room or a user), history, edit, delete, read receipts.
extension API {
    struct SendBody: Decodable {
        let body: String
        let clientMsgId: String?
        let replyTo: String?
        let threadRootId: String?
        let mentions: [String]?
    }

    struct DirectJSON: Codable, Sendable {
        let message: MessageJSON
        let room: RoomJSON
    }

    struct HistoryJSON: Codable, Sendable {
        let messages: [MessageJSON]
        let hasMore: Bool
    }

    func registerMessages(_ routes: RouterGroup<ParleyContext>) {
        routes.post("users/:userId/messages") { request, context in
            try self.commands.admitSend(try context.user())
            let body = try await request.json(SendBody.self, limit: self.maxBodyBytes)
            let sent = try await self.commands.send(
                try context.user(), to: .user(try context.parameter("userId")), body: body.body, clientMsgId: body.clientMsgId, replyTo: nil
            )
            return Reply(sent.duplicate ? .ok : .created, DirectJSON(message: sent.message, room: sent.room!))
        }
        routes.post("rooms/:roomId/messages") { request, context in
            try self.commands.admitSend(try context.user())
            let body = try await request.json(SendBody.self, limit: self.maxBodyBytes)
            let sent = try await self.commands.send(
                try context.user(), to: .room(try context.parameter("roomId")), body: body.body, clientMsgId: body.clientMsgId,
                replyTo: body.replyTo, threadRootId: body.threadRootId, mentions: body.mentions ?? [])
            return Reply(sent.duplicate ? .ok : .created, ["message": sent.message])
        }
        routes.get("rooms/:roomId/messages") { request, context in try await self.history(request, context) }
        routes.get("rooms/:roomId/messages/:messageId/thread") { request, context in try await self.thread(request, context) }
        routes.patch("rooms/:roomId/messages/:messageId") { request, context in
            struct Body: Decodable { let body: String }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let edited = try await self.commands.edit(
                try context.user(), roomId: try context.parameter("roomId"), messageId: try context.parameter("messageId"), body: body.body)
            return Reply(["message": edited])
        }
        routes.delete("rooms/:roomId/messages/:messageId") { _, context in
            let deleted = try await self.commands.delete(
                try context.user(), roomId: try context.parameter("roomId"), messageId: try context.parameter("messageId"))
            return Reply(["message": deleted])
        }
        routes.post("rooms/:roomId/read") { request, context in
            struct Body: Decodable { let seq: Int64 }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let roomId = try context.parameter("roomId")
            try await self.commands.markRead(try context.user(), roomId: roomId, seq: body.seq)
            return Reply(["roomId": roomId, "seq": String(body.seq)])
        }
    }

    /// A page of a thread's replies, oldest first, after `after` (a seq).
    func thread(_ request: Request, _ context: ParleyContext) async throws -> Reply<HistoryJSON> {
        let roomId = try context.parameter("roomId")
        let viewer = try context.user()
        try await requireMember(roomId, viewer)
        let limit = try Self.number("limit", request).map(Int.init) ?? 50
        guard (1...200).contains(limit) else { throw APIError.invalid("limit must be 1 to 200") }
        let rootId = try context.parameter("messageId")
        let page = try await messages.thread(roomId: roomId, rootId: rootId, after: try Self.number("after", request), limit: limit)
        // No replies: is there such a message? The log's guard state knows a message the read model may not show yet; the
        // read model knows one whose record went to the archive.
        if page.messages.isEmpty, try await !log.messageRecorded(roomId: roomId, messageId: rootId),
            try await messages.message(id: rootId).map({ $0.roomId == roomId }) != true
        {
            throw APIError.notFound("no message \(rootId) in this room")
        }
        return Reply(HistoryJSON(messages: page.messages.map { MessageJSON($0, viewer: viewer) }, hasMore: page.hasMore))
    }

    /// A non-negative integer query parameter; nil when absent.
    static func number(_ name: String, _ request: Request) throws -> Int64? {
        guard let text = request.uri.queryParameters[Substring(name)].map(String.init) else { return nil }
        guard !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw APIError.invalid("\(name) must be a non-negative integer")
        }
        // Any non-negative integer is valid (the document says so); past Int64 it is beyond every seq anyway.
        return Int64(text) ?? .max
    }

    func history(_ request: Request, _ context: ParleyContext) async throws -> Reply<HistoryJSON> {
        let roomId = try context.parameter("roomId")
        try await requireMember(roomId, try context.user())
        func number(_ name: String) throws -> Int64? { try Self.number(name, request) }
        let limit = try number("limit").map(Int.init) ?? 50
        guard (1...200).contains(limit) else { throw APIError.invalid("limit must be 1 to 200") }
        let page = try await messages.page(roomId: roomId, before: try number("before"), after: try number("after"), limit: limit)
        let viewer = try context.user()
        return Reply(HistoryJSON(messages: page.messages.map { MessageJSON($0, viewer: viewer) }, hasMore: page.hasMore))
    }
}
