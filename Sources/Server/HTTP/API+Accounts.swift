import Events
import Hummingbird

/// Registration, login and users.
extension API {
    func registerAccounts(_ routes: RouterGroup<ParleyContext>, authenticated: RouterGroup<ParleyContext>) {
        routes.post("auth/register") { request, context in
            try self.registerLimiter.check(self.clientAddress.of(request, peer: context.remoteAddress?.ipAddress))
            return try await self.registerUser(request)
        }
        routes.post("auth/login") { request, context in
            try await self.login(request, from: self.clientAddress.of(request, peer: context.remoteAddress?.ipAddress))
        }
        authenticated.get("me") { _, context in Reply(["user": try await self.user(id: try context.user())]) }
        authenticated.get("users/:userId") { _, context in Reply(["user": try await self.user(id: try context.parameter("userId"))]) }
        authenticated.get("users") { request, _ in
            guard let name = request.uri.queryParameters["username"].map(String.init), !name.isEmpty else {
                throw APIError.invalid("the query parameter username is required")
            }
            guard let user = try await self.metadata.user(username: name) else { throw APIError.notFound("no user \(name)") }
            return Reply(["user": UserJSON(id: user.id, username: user.username, displayName: user.displayName, createdAt: user.createdAt)])
        }
    }

    struct AuthJSON: Codable, Sendable {
        let user: UserJSON
        let token: String
    }

    func registerUser(_ request: Request) async throws -> Reply<AuthJSON> {
        struct Body: Decodable {
            let username: String
            let password: String
            let displayName: String?
        }
        let body = try await request.json(Body.self, limit: maxBodyBytes)
        // Counted in Unicode scalars, as JSON Schema's minLength/maxLength count.
        guard (8...128).contains(body.password.unicodeScalars.count) else { throw APIError.invalid("a password is 8 to 128 characters") }
        let userId = newID()
        let hash = try await passwords.hash(body.password)
        let outcome = try await log.execute(
            .register(userId: userId, username: body.username, displayName: body.displayName, passwordHash: hash), actor: userId)
        guard case .userRegistered(let user)? = outcome.events.first?.event.data else { throw APIError.invalid("registration failed") }
        let json = UserJSON(
            id: user.userId, username: user.username, displayName: user.displayName, createdAt: outcome.events.first?.event.at)
        return Reply(.created, AuthJSON(user: json, token: try await tokens.issue(for: userId)))
    }

    func login(_ request: Request, from address: String) async throws -> Reply<AuthJSON> {
        struct Body: Decodable {
            let username: String
            let password: String
        }
        let body = try await request.json(Body.self, limit: maxBodyBytes)
        try loginThrottle.admit(address: address, username: body.username)
        let wrong = APIError.unauthorized("wrong username or password")
        guard let found = try await metadata.credentials(username: body.username) else {
            // A hash to check against all the same: a wrong username takes as long as a wrong password.
            try await passwords.verifyNobody(body.password)
            loginThrottle.failed(username: body.username)
            throw wrong
        }
        guard try await passwords.verify(body.password, hash: found.passwordHash) else {
            loginThrottle.failed(username: body.username)
            throw wrong
        }
        let user = found.user
        return Reply(
            AuthJSON(
                user: UserJSON(id: user.id, username: user.username, displayName: user.displayName, createdAt: user.createdAt),
                token: try await tokens.issue(for: user.id)))
    }

    func user(id: String) async throws -> UserJSON {
        guard let user = try await metadata.user(id: id) else { throw APIError.notFound("no user \(id)") }
        return UserJSON(id: user.id, username: user.username, displayName: user.displayName, createdAt: user.createdAt)
    }
}
