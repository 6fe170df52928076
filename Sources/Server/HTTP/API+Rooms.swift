import Events
import Hummingbird

/// Rooms, invites and members.
extension API {
    func registerRooms(_ routes: RouterGroup<ParleyContext>) {
        routes.post("rooms") { request, context in
            struct Body: Decodable {
                let name: String
                let invite: [String]?
            }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let room = try await self.commands.createRoom(try context.user(), name: body.name, invite: body.invite ?? [])
            return Reply(.created, ["room": room])
        }
        routes.get("rooms") { _, context in
            Reply(["rooms": try await self.metadata.rooms(of: try context.user()).map(RoomJSON.init)])
        }
        routes.get("rooms/:roomId") { _, context in try await self.room(context) }
        routes.patch("rooms/:roomId") { request, context in
            struct Body: Decodable { let name: String }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let roomId = try context.parameter("roomId")
            let name = try await self.commands.rename(try context.user(), roomId: roomId, name: body.name)
            return Reply(["room": ["id": roomId, "name": name]])
        }
        routes.post("rooms/:roomId/invites") { request, context in
            struct Body: Decodable { let userId: String }
            let body = try await request.json(Body.self, limit: self.maxBodyBytes)
            let roomId = try context.parameter("roomId")
            let me = try context.user()
            try await self.commands.invite(me, roomId: roomId, userId: body.userId)
            return Reply(.created, ["invite": ["roomId": roomId, "userId": body.userId, "invitedBy": me]])
        }
        routes.get("invites") { _, context in Reply(["invites": try await self.metadata.invites(of: try context.user())]) }
        for action in ChatCommands.MembershipAction.allCases {
            routes.post("rooms/:roomId/\(action.rawValue)") { _, context in
                let roomId = try context.parameter("roomId")
                try await self.commands.membership(try context.user(), action, roomId: roomId)
                return Reply(["roomId": roomId, "result": action.rawValue])
            }
        }
        routes.delete("rooms/:roomId/members/:userId") { _, context in
            let roomId = try context.parameter("roomId")
            let userId = try context.parameter("userId")
            try await self.commands.remove(try context.user(), roomId: roomId, userId: userId)
            return Reply(["roomId": roomId, "userId": userId, "state": MemberState.removed.rawValue])
        }
        routes.put("rooms/:roomId/members/:userId/role") { request, context in
            struct Body: Decodable { let role: Role }
            let roomId = try context.parameter("roomId")
            let userId = try context.parameter("userId")
            let body: Body
            do { body = try await request.json(Body.self, limit: self.maxBodyBytes) } catch let error as APIError
                where error.code == .invalidRequest
            {
                throw APIError.invalid("role must be admin or member")
            }
            try await self.commands.setRole(try context.user(), roomId: roomId, userId: userId, role: body.role)
            return Reply(["roomId": roomId, "userId": userId, "role": body.role.rawValue])
        }
    }

    func room(_ context: ParleyContext) async throws -> Reply<[String: RoomJSON]> {
        let roomId = try context.parameter("roomId")
        try await requireMember(roomId, try context.user(), invited: true)
        guard let record = try await metadata.room(id: roomId) else {
            throw APIError.notFound("room \(roomId) is not ready yet; try again")
        }
        let members = try await metadata.members(of: roomId).map {
            MemberJSON(
                userId: $0.userId, role: $0.role, state: $0.state, lastReadSeq: $0.lastReadSeq, muted: $0.muted ? true : nil,
                mutedUntil: $0.muted ? $0.mutedUntil : nil)
        }
        return Reply(["room": RoomJSON(record, members: members)])
    }
}
