import Events
import Foundation
import Hummingbird
import Projections

/// Reactions, pins and who read what (CONTRACT section 7): the commands go through `ChatCommands`, the lists read the
/// projected read models after a membership check against the log.
extension API {
    struct ReactionResultJSON: Codable, Sendable {
        let messageId: String
        let emoji: String
        /// Whether the user's reaction is on the message now.
        let reacted: Bool
    }

    struct PinJSON: Codable, Sendable {
        let message: MessageJSON
        let pinnedBy: String
        let pinnedAt: Date
    }

    struct PinResultJSON: Codable, Sendable {
        let messageId: String
        let pinned: Bool
    }

    func registerReactions(_ routes: RouterGroup<ParleyContext>) {
        routes.post("rooms/:roomId/messages/:messageId/reactions") { request, context in
            struct Body: Decodable { let emoji: String }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let messageId = try context.parameter("messageId")
            let added = try await self.commands.react(
                try context.user(), roomId: try context.parameter("roomId"), messageId: messageId, emoji: body.emoji, add: true)
            return Reply(added ? .created : .ok, ["reaction": ReactionResultJSON(messageId: messageId, emoji: body.emoji, reacted: true)])
        }
        routes.delete("rooms/:roomId/messages/:messageId/reactions/:emoji") { _, context in
            // Path parameters come percent-encoded (an emoji always is).
            let raw = try context.parameter("emoji")
            guard let emoji = raw.removingPercentEncoding else { throw APIError.invalid("the emoji is not valid percent-encoding") }
            let messageId = try context.parameter("messageId")
            _ = try await self.commands.react(
                try context.user(), roomId: try context.parameter("roomId"), messageId: messageId, emoji: emoji, add: false)
            return Reply(["reaction": ReactionResultJSON(messageId: messageId, emoji: emoji, reacted: false)])
        }
        routes.put("rooms/:roomId/pins/:messageId") { _, context in
            let messageId = try context.parameter("messageId")
            let pinned = try await self.commands.pin(
                try context.user(), roomId: try context.parameter("roomId"), messageId: messageId, pinned: true)
            return Reply(pinned ? .created : .ok, ["pin": PinResultJSON(messageId: messageId, pinned: true)])
        }
        routes.delete("rooms/:roomId/pins/:messageId") { _, context in
            let messageId = try context.parameter("messageId")
            _ = try await self.commands.pin(
                try context.user(), roomId: try context.parameter("roomId"), messageId: messageId, pinned: false)
            return Reply(["pin": PinResultJSON(messageId: messageId, pinned: false)])
        }
        routes.get("rooms/:roomId/pins") { _, context in
            let roomId = try context.parameter("roomId")
            let viewer = try context.user()
            try await self.requireMember(roomId, viewer)
            let pins = try await self.metadata.pins(roomId: roomId)
            let messages = try await self.messages.messages(ids: pins.map(\.messageId))
            // A pin whose message the messages projector has not written yet is left out until it has.
            let list = pins.compactMap { pin in
                messages[pin.messageId].map {
                    PinJSON(message: MessageJSON($0, viewer: viewer), pinnedBy: pin.pinnedBy, pinnedAt: pin.pinnedAt)
                }
            }
            return Reply(["pins": list])
        }
        routes.get("rooms/:roomId/receipts") { _, context in
            let roomId = try context.parameter("roomId")
            try await self.requireMember(roomId, try context.user())
            return Reply(["receipts": try await self.metadata.receipts(roomId: roomId)])
        }
    }
}
