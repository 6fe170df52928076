import Events
import Foundation
import Hummingbird
import Projections

/// Moderation (CONTRACT section 7): bans and mutes in a room by its owner and admins, blocks between two users.
extension API {
    struct ModerationJSON: Codable, Sendable {
        let roomId: String?
        let userId: String
        let state: String
    }

    func registerModeration(_ routes: RouterGroup<ParleyContext>) {
        routes.post("rooms/:roomId/bans/:userId") { request, context in
            struct Body: Decodable { let reason: String? }
            let body = try await request.jsonIfAny(Body.self, limit: self.maxBodyBytes)
            let (roomId, userId) = (try context.parameter("roomId"), try context.parameter("userId"))
            _ = try await self.commands.moderate(try context.user(), .ban(roomId: roomId, reason: body?.reason), userId: userId)
            return Reply(["ban": ModerationJSON(roomId: roomId, userId: userId, state: "banned")])
        }
        routes.delete("rooms/:roomId/bans/:userId") { _, context in
            let (roomId, userId) = (try context.parameter("roomId"), try context.parameter("userId"))
            _ = try await self.commands.moderate(try context.user(), .unban(roomId: roomId), userId: userId)
            return Reply(["ban": ModerationJSON(roomId: roomId, userId: userId, state: "unbanned")])
        }
        routes.get("rooms/:roomId/bans") { _, context in
            let roomId = try context.parameter("roomId")
            let viewer = try context.user()
            try await self.requireMember(roomId, viewer)
            guard let me = try await self.log.member(roomId: roomId, userId: viewer), me.role >= .admin else {
                throw RuleError(.forbidden, "only the owner and admins see the bans")
            }
            return Reply(["bans": try await self.metadata.bans(roomId: roomId)])
        }
        routes.post("rooms/:roomId/mutes/:userId") { request, context in
            struct Body: Decodable { let until: String? }
            let body = try await request.jsonIfAny(Body.self, limit: self.maxBodyBytes)
            var until: Date?
            if let text = body?.until {
                guard let date = parseTimestampWithFoundation(text) else {
                    throw APIError.invalid("until must be an ISO 8601 time in UTC, like 2026-12-01T18:00:00Z")
                }
                until = date
            }
            let (roomId, userId) = (try context.parameter("roomId"), try context.parameter("userId"))
            _ = try await self.commands.moderate(try context.user(), .mute(roomId: roomId, until: until), userId: userId)
            return Reply(["mute": ModerationJSON(roomId: roomId, userId: userId, state: "muted")])
        }
        routes.delete("rooms/:roomId/mutes/:userId") { _, context in
            let (roomId, userId) = (try context.parameter("roomId"), try context.parameter("userId"))
            _ = try await self.commands.moderate(try context.user(), .unmute(roomId: roomId), userId: userId)
            return Reply(["mute": ModerationJSON(roomId: roomId, userId: userId, state: "unmuted")])
        }
        routes.put("me/blocks/:userId") { _, context in
            let userId = try context.parameter("userId")
            _ = try await self.commands.moderate(try context.user(), .block, userId: userId)
            return Reply(["block": ModerationJSON(roomId: nil, userId: userId, state: "blocked")])
        }
        routes.delete("me/blocks/:userId") { _, context in
            let userId = try context.parameter("userId")
            _ = try await self.commands.moderate(try context.user(), .unblock, userId: userId)
            return Reply(["block": ModerationJSON(roomId: nil, userId: userId, state: "unblocked")])
        }
        routes.get("me/blocks") { _, context in
            return Reply(["blocks": try await self.metadata.blocks(of: try context.user())])
        }
    }
}
