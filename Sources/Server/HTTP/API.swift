import Drivers
import EventLog
import Events
import Hummingbird
import Projections

/// The HTTP API of CONTRACT section 3. Commands go through `ChatCommands`, as the
/// WebSocket's do, and return as soon as their events are appended; queries read the
/// projected read models. Access to a room's content is checked against the log's guard
/// state, so a removed member loses it at once. The routes are grouped by concept:
/// `API+Accounts`, `API+Rooms`, `API+Messages`; each handler reads its input, calls one
/// command or query and returns a `Reply`.
struct API: Sendable {
    let log: EventLog
    let commands: ChatCommands
    let metadata: MetadataReadModel
    let messages: MessagesReadModel
    let searchReadModel: SearchReadModel
    /// Searches per user (1 a second, bursts of 10).
    let searchLimiter = RateLimiter(perSecond: 1, burst: 10)
    /// Searches at once on this instance: they share the PostgreSQL pool with the projectors and the metadata reads.
    let searches = AsyncSemaphore(permits: 3)
    let tokens: Tokens
    let passwords: Passwords
    let maxBodyBytes: Int
    /// Account creation per client address.
    let registerLimiter: RateLimiter
    /// Password guessing: login attempts per address, failures per username.
    let loginThrottle: LoginThrottle
    /// Who a request came from (behind trusted proxies, from `X-Forwarded-For`).
    let clientAddress: ClientAddress

    /// The user id of a valid token for a user the log knows.
    func authenticate(token: String) async throws -> String {
        guard let userId = await tokens.userId(from: token) else { throw APIError.unauthorized("the token is invalid or expired") }
        guard try await log.userExists(userId) else { throw APIError.unauthorized("the token's user does not exist") }
        return userId
    }

    /// Adds every route: `routes` open to anyone, `authenticated` behind `AuthMiddleware`.
    func register(_ routes: RouterGroup<ParleyContext>, authenticated: RouterGroup<ParleyContext>) {
        registerAccounts(routes, authenticated: authenticated)
        registerRooms(authenticated)
        registerMessages(authenticated)
        registerReactions(authenticated)
        registerModeration(authenticated)
        registerPresence(authenticated)
        registerSearch(authenticated)
    }

    /// 403 unless `userId` is a joined member now (or, with `invited`, invited).
    func requireMember(_ roomId: String, _ userId: String, invited: Bool = false) async throws {
        let member = try await log.member(roomId: roomId, userId: userId)
        if member == nil, !(try await log.roomExists(roomId)) { throw APIError.notFound("no room \(roomId)") }
        guard let member, member.state == .joined || (invited && member.state == .invited) else {
            throw RuleError(.notAMember, "not a member of room \(roomId)")
        }
    }
}

extension ParleyContext {
    /// A path parameter the route always has.
    func parameter(_ name: String) throws -> String { try parameters.require(name) }
}
