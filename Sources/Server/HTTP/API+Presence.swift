import EventLog
import Foundation
import Hummingbird

/// Presence (CONTRACT section 7): whether a user has a WebSocket open on any instance, and when they were last seen.
extension API {
    struct PresenceJSON: Codable, Sendable {
        let userId: String
        let status: String
        /// Now for a user online; nil for one never seen.
        let lastSeenAt: Date?
    }

    func registerPresence(_ routes: RouterGroup<ParleyContext>) {
        routes.get("users/:userId/presence") { _, context in
            let userId = try context.parameter("userId")
            guard try await self.log.userExists(userId) else { throw APIError.notFound("no user \(userId)") }
            let status = try await self.log.presence(instance: "").status(of: userId)
            return Reply(PresenceJSON(userId: userId, status: status.online ? "online" : "offline", lastSeenAt: status.lastSeen))
        }
    }
}
