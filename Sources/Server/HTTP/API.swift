import Drivers
import EventLog
import Events
import Foundation
import Hummingbird
import Projections

/// The HTTP API of CONTRACT section 3. Commands go through the rules of the log and
/// return as soon as their events are appended, with what the client needs taken from
/// those events; queries read the projected read models. Access to a room's content is
/// checked against the log's guard state, so a removed member loses it at once.
struct API: Sendable {
    let log: EventLog
    let metadata: MetadataReadModel
    let messages: MessagesReadModel
    let tokens: Tokens
    let passwords: Passwords
    let maxBodyBytes: Int
    /// Message sends per user (HTTP and WebSocket together).
    let sendLimiter: RateLimiter
    /// Account creation per client address.
    let registerLimiter: RateLimiter

    /// The user id of a valid token for a user the log knows.
    func authenticate(token: String) async throws -> String {
        guard let userId = await tokens.userId(from: token) else { throw APIError.unauthorized("the token is invalid or expired") }
        guard try await log.userExists(userId) else { throw APIError.unauthorized("the token's user does not exist") }
        return userId
    }

    func register(_ routes: RouterGroup<ParleyContext>, authenticated: RouterGroup<ParleyContext>) {
        routes.post("auth/register") { request, context in
            try self.registerLimiter.check(context.remoteAddress.map { "\($0.ipAddress ?? "?")" } ?? "?")
            return try await self.registerUser(request)
        }
        routes.post("auth/login") { request, _ in try await self.login(request) }

        authenticated.get("me") { _, context in Reply(["user": try await self.user(id: try context.user())]) }
        authenticated.get("users/:userId") { _, context in
            Reply(["user": try await self.user(id: try context.parameters.require("userId"))])
        }
        authenticated.get("users") { request, _ in
            guard let name = request.uri.queryParameters["username"].map(String.init), !name.isEmpty else {
                throw APIError.invalid("the query parameter username is required")
            }
            guard let user = try await self.metadata.user(username: name) else { throw APIError.notFound("no user \(name)") }
            return Reply(["user": UserJSON(id: user.id, username: user.username, displayName: user.displayName, createdAt: user.createdAt)])
        }
        authenticated.post("users/:userId/messages") { request, context in try await self.sendDirect(request, context) }

        authenticated.post("rooms") { request, context in try await self.createRoom(request, context) }
        authenticated.get("rooms") { _, context in
            Reply(["rooms": try await self.metadata.rooms(of: try context.user()).map(RoomJSON.init)])
        }
        authenticated.get("rooms/:roomId") { _, context in try await self.room(context) }
        authenticated.patch("rooms/:roomId") { request, context in
            struct Body: Decodable { let name: String }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let roomId = try context.parameters.require("roomId")
            try await self.log.execute(.rename(roomId: roomId, name: body.name), actor: try context.user())
            return Reply(["room": ["id": roomId, "name": body.name.trimmingCharacters(in: .whitespacesAndNewlines)]])
        }
        authenticated.post("rooms/:roomId/invites") { request, context in
            struct Body: Decodable { let userId: String }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let roomId = try context.parameters.require("roomId")
            try await self.log.execute(.invite(roomId: roomId, userId: body.userId), actor: try context.user())
            return Reply(.created, ["invite": ["roomId": roomId, "userId": body.userId, "invitedBy": try context.user()]])
        }
        authenticated.get("invites") { _, context in Reply(["invites": try await self.metadata.invites(of: try context.user())]) }
        for (path, command) in [("join", Command.join), ("decline", Command.decline), ("leave", Command.leave)] as [(String, @Sendable (String) -> Command)] {
            authenticated.post("rooms/:roomId/\(path)") { _, context in
                let roomId = try context.parameters.require("roomId")
                try await self.log.execute(command(roomId), actor: try context.user())
                return Reply(["roomId": roomId, "result": path])
            }
        }
        authenticated.delete("rooms/:roomId/members/:userId") { _, context in
            let roomId = try context.parameters.require("roomId"), userId = try context.parameters.require("userId")
            try await self.log.execute(.remove(roomId: roomId, userId: userId), actor: try context.user())
            return Reply(["roomId": roomId, "userId": userId, "state": MemberState.removed.rawValue])
        }
        authenticated.put("rooms/:roomId/members/:userId/role") { request, context in
            struct Body: Decodable { let role: Role }
            let roomId = try context.parameters.require("roomId"), userId = try context.parameters.require("userId")
            let body: Body
            do { body = try await request.json(Body.self, limit: self.maxBodyBytes) } catch let error as APIError where error.code == "invalid_request" {
                throw APIError.invalid("role must be admin or member")
            }
            try await self.log.execute(.setRole(roomId: roomId, userId: userId, role: body.role), actor: try context.user())
            return Reply(["roomId": roomId, "userId": userId, "role": body.role.rawValue])
        }
        authenticated.post("rooms/:roomId/messages") { request, context in try await self.send(request, context) }
        authenticated.get("rooms/:roomId/messages") { request, context in try await self.history(request, context) }
        authenticated.patch("rooms/:roomId/messages/:messageId") { request, context in
            struct Body: Decodable { let body: String }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let roomId = try context.parameters.require("roomId"), messageId = try context.parameters.require("messageId")
            let outcome = try await self.log.execute(.edit(roomId: roomId, messageId: messageId, body: body.body), actor: try context.user())
            let at = outcome.events.first?.event.at ?? Date()
            return Reply(["message": EditedJSON(id: messageId, roomId: roomId, body: body.body, editedAt: at)])
        }
        authenticated.delete("rooms/:roomId/messages/:messageId") { _, context in
            let roomId = try context.parameters.require("roomId"), messageId = try context.parameters.require("messageId")
            try await self.log.execute(.delete(roomId: roomId, messageId: messageId), actor: try context.user())
            return Reply(["message": DeletedJSON(id: messageId, roomId: roomId, deleted: true)])
        }
        authenticated.post("rooms/:roomId/read") { request, context in
            struct Body: Decodable { let seq: Int64 }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let roomId = try context.parameters.require("roomId")
            try await self.log.execute(.markRead(roomId: roomId, seq: body.seq), actor: try context.user())
            return Reply(["roomId": roomId, "seq": String(body.seq)])
        }
    }

    struct EditedJSON: Codable, Sendable { let id: String; let roomId: String; let body: String; let editedAt: Date }
    struct DeletedJSON: Codable, Sendable { let id: String; let roomId: String; let deleted: Bool }

    // MARK: - Accounts

    func registerUser(_ request: Request) async throws -> Reply<AuthJSON> {
        struct Body: Decodable { let username: String; let password: String; let displayName: String? }
        let body = try await request.json(Body.self, limit: maxBodyBytes)
        // Counted in Unicode scalars, as JSON Schema's minLength/maxLength count.
        guard (8...128).contains(body.password.unicodeScalars.count) else { throw APIError.invalid("a password is 8 to 128 characters") }
        let userId = newID()
        let hash = try await passwords.hash(body.password)
        let outcome = try await log.execute(
            .register(userId: userId, username: body.username, displayName: body.displayName, passwordHash: hash), actor: userId)
        guard case .userRegistered(let user)? = outcome.events.first?.event.data else { throw APIError.invalid("registration failed") }
        let json = UserJSON(id: user.userId, username: user.username, displayName: user.displayName, createdAt: outcome.events.first?.event.at)
        return Reply(.created, AuthJSON(user: json, token: try await tokens.issue(for: userId)))
    }

    func login(_ request: Request) async throws -> Reply<AuthJSON> {
        struct Body: Decodable { let username: String; let password: String }
        let body = try await request.json(Body.self, limit: maxBodyBytes)
        let wrong = APIError.unauthorized("wrong username or password")
        guard let found = try await metadata.credentials(username: body.username) else {
            _ = try await passwords.verify(body.password, hash: "$2b$12$ccccccccccccccccccccccccccccccccccccccccccccccccccccc")  // same time either way
            throw wrong
        }
        guard try await passwords.verify(body.password, hash: found.passwordHash) else { throw wrong }
        let user = found.user
        return Reply(AuthJSON(
            user: UserJSON(id: user.id, username: user.username, displayName: user.displayName, createdAt: user.createdAt),
            token: try await tokens.issue(for: user.id)))
    }

    struct AuthJSON: Codable, Sendable { let user: UserJSON; let token: String }

    func user(id: String) async throws -> UserJSON {
        guard let user = try await metadata.user(id: id) else { throw APIError.notFound("no user \(id)") }
        return UserJSON(id: user.id, username: user.username, displayName: user.displayName, createdAt: user.createdAt)
    }

    // MARK: - Rooms and messages

    struct SendBody: Decodable { let body: String; let clientMsgId: String?; let replyTo: String? }

    func sendDirect(_ request: Request, _ context: ParleyContext) async throws -> Reply<DirectJSON> {
        try sendLimiter.check(try context.user())
        let body = try await request.json(SendBody.self, limit: maxBodyBytes)
        let to = try context.parameters.require("userId")
        let outcome = try await log.execute(
            .sendDirect(to: to, messageId: newID(), body: body.body, clientMsgId: body.clientMsgId), actor: try context.user())
        guard let sent = outcome.events.last, let message = MessageJSON(sent) else { throw APIError.invalid("nothing was sent") }
        let me = try context.user()
        let room = RoomJSON(created: outcome.events)
            ?? RoomJSON(id: message.roomId, kind: .direct, members: [me, to].sorted().map { MemberJSON(userId: $0, role: .member, state: .joined) })
        return Reply(outcome.duplicate ? .ok : .created, DirectJSON(message: message, room: room))
    }

    struct DirectJSON: Codable, Sendable { let message: MessageJSON; let room: RoomJSON }

    func createRoom(_ request: Request, _ context: ParleyContext) async throws -> Reply<[String: RoomJSON]> {
        struct Body: Decodable { let name: String; let invite: [String]? }
        let body = try await request.json(Body.self, limit: maxBodyBytes)
        let outcome = try await log.execute(.createGroup(roomId: "r-" + newID(), name: body.name, invite: body.invite ?? []), actor: try context.user())
        guard let room = RoomJSON(created: outcome.events) else { throw APIError.invalid("the room was not created") }
        return Reply(.created, ["room": room])
    }

    /// 403 unless `userId` is a joined member now (or, with `invited`, invited).
    func requireMember(_ roomId: String, _ userId: String, invited: Bool = false) async throws {
        let member = try await log.member(roomId: roomId, userId: userId)
        if member == nil, !(try await log.roomExists(roomId)) { throw APIError.notFound("no room \(roomId)") }
        guard let member, member.state == .joined || (invited && member.state == .invited) else {
            throw APIError(.forbidden, "not_a_member", "not a member of room \(roomId)")
        }
    }

    func room(_ context: ParleyContext) async throws -> Reply<[String: RoomJSON]> {
        let roomId = try context.parameters.require("roomId")
        try await requireMember(roomId, try context.user(), invited: true)
        guard let record = try await metadata.room(id: roomId) else { throw APIError.notFound("room \(roomId) is not ready yet; try again") }
        let members = try await metadata.members(of: roomId).map { MemberJSON(userId: $0.userId, role: $0.role, state: $0.state, lastReadSeq: $0.lastReadSeq) }
        return Reply(["room": RoomJSON(record, members: members)])
    }

    func send(_ request: Request, _ context: ParleyContext) async throws -> Reply<[String: MessageJSON]> {
        try sendLimiter.check(try context.user())
        let body = try await request.json(SendBody.self, limit: maxBodyBytes)
        let outcome = try await log.execute(
            .send(roomId: try context.parameters.require("roomId"), messageId: newID(), body: body.body, clientMsgId: body.clientMsgId,
                  replyTo: body.replyTo),
            actor: try context.user())
        guard let sent = outcome.events.last, let message = MessageJSON(sent) else { throw APIError.invalid("nothing was sent") }
        return Reply(outcome.duplicate ? .ok : .created, ["message": message])
    }

    func history(_ request: Request, _ context: ParleyContext) async throws -> Reply<HistoryJSON> {
        let roomId = try context.parameters.require("roomId")
        try await requireMember(roomId, try context.user())
        func number(_ name: String) throws -> Int64? {
            guard let text = request.uri.queryParameters[Substring(name)].map(String.init) else { return nil }
            guard !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }) else {
                throw APIError.invalid("\(name) must be a non-negative integer")
            }
            // Any non-negative integer is valid (the document says so); past Int64 it is
            // beyond every seq anyway.
            return Int64(text) ?? .max
        }
        let limit = try number("limit").map(Int.init) ?? 50
        guard (1...200).contains(limit) else { throw APIError.invalid("limit must be 1 to 200") }
        let page = try await messages.page(roomId: roomId, before: try number("before"), after: try number("after"), limit: limit)
        return Reply(HistoryJSON(messages: page.messages.map(MessageJSON.init), hasMore: page.hasMore))
    }

    struct HistoryJSON: Codable, Sendable { let messages: [MessageJSON]; let hasMore: Bool }
}

extension RoomJSON {
    init(id: String, kind: RoomKind, members: [MemberJSON]) {
        self.id = id; self.kind = kind; self.members = members
    }
}
