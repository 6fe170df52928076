import Drivers
import Events

extension EventLog {
    /// Reads, in one round trip, the guard state `command` is decided against: the room's
    /// kind, version and last seq, the members and messages the command concerns, and
    /// whether the users it names exist.
    func loadState(for command: Command, actor: String, keys: GuardKeys) async throws -> DecisionState {
        let users = guardKeys(partitioning.userPartition)
        var members: [String]? = [actor]  // nil: every member
        var messages: [String] = []
        var knownUsers: [String] = []
        var pinOf: String?  // the message whose pin the command reads
        var reactionsOf: String?  // the message whose reactions by the actor the command reads
        var readBlocks = false  // the command concerns a direct room (existing or not) and reads who blocks whom in it
        var inviteeBlocks: Set<String> = []  // invitees who block the actor
        switch command {
        case .register(_, let username, _, _):
            let taken = try await redis.command(["HEXISTS", users.usernames, username.lowercased()])
            return DecisionState(usernameTaken: taken.int == 1)
        case .createGroup(_, _, let invite):
            knownUsers = invite
            // Whether an invitee blocks the creator: each pair's direct room, in its own partition (read apart, as for
            // `invite`). At most `maxInvitesPerCommand` reads, and creating groups is rate-limited.
            for userId in Set(invite) where userId != actor {
                let direct = Partitioning.directRoomId(actor, userId)
                let blocks = guardKeys(partitioning.partition(ofRoom: direct)).blocks(direct)
                if try await redis.command(["HGET", blocks, userId]).string != nil { inviteeBlocks.insert(userId) }
            }
        case .sendDirect(let to, _, _, _):
            knownUsers = [to]
            readBlocks = true
        case .send(let roomId, _, _, _, let replyTo, let threadRootId, let mentions):
            messages = Array(Set([replyTo, threadRootId].compactMap { $0 })).sorted()
            members = [actor] + mentions.filter { $0 != actor }
            if roomId.hasPrefix("d-") {
                // A direct room: both members, and whether either blocks the other.
                members = nil
                readBlocks = true
            }
        case .ban(_, let userId, _):
            members = [actor, userId]
            knownUsers = [userId]
        case .unban(_, let userId), .mute(_, let userId, _), .unmute(_, let userId):
            members = [actor, userId]
        case .block(let userId), .unblock(let userId):
            knownUsers = [userId]
            readBlocks = true
        case .edit(_, let messageId, _):
            messages = [messageId]
        case .delete(_, let messageId), .pin(_, let messageId), .unpin(_, let messageId):
            messages = [messageId]
            pinOf = messageId
        case .react(_, let messageId, _), .unreact(_, let messageId, _):
            messages = [messageId]
            reactionsOf = messageId
        case .invite(_, let userId):
            members = [actor, userId]
            knownUsers = [userId]
            // Whether the invitee blocks the inviter is kept with their direct room, in another partition: read apart, so
            // not checked again atomically at the append.
            let direct = Partitioning.directRoomId(actor, userId)
            let blocks = guardKeys(partitioning.partition(ofRoom: direct)).blocks(direct)
            if try await redis.command(["HGET", blocks, userId]).string != nil { inviteeBlocks.insert(userId) }
        case .remove(_, let userId), .setRole(_, let userId, _):
            members = [actor, userId]
        case .leave:
            members = nil
        case .join, .decline, .rename, .markRead:
            break
        }
        guard let roomId = command.roomId(actor: actor) else { return DecisionState() }
        var commands: [[String]] = [["HGETALL", keys.room(roomId)]]
        commands.append(members.map { ["HMGET", keys.members(roomId)] + $0 } ?? ["HGETALL", keys.members(roomId)])
        if !messages.isEmpty {
            // `ev` again after the records: an eviction between the two reads of the room (the pipeline is not atomic)
            // shows here, so a record it took is looked for in the archive.
            commands += [["HMGET", keys.messages(roomId)] + messages, ["HGET", keys.room(roomId), "ev"]]
        }
        let extra = commands.count
        if let pinOf { commands.append(["HGET", keys.pins(roomId), pinOf]) }
        if let reactionsOf { commands.append(["HGET", keys.reactions(roomId), RoomState.reactionKey(reactionsOf, actor)]) }
        let blocksAt = commands.count
        if readBlocks { commands.append(["HKEYS", keys.blocks(roomId)]) }
        if !knownUsers.isEmpty { commands.append(["HMGET", users.users] + knownUsers) }
        let replies = try await redis.pipeline(commands).map { try $0.orThrow() }

        var state = DecisionState()
        if readBlocks { state.blockers = Set(replies[blocksAt].array?.compactMap(\.string) ?? []) }
        state.blockers.formUnion(inviteeBlocks)
        let meta = Self.pairs(replies[0])
        if let kindText = meta["kind"], let kind = RoomKind(rawValue: kindText) {
            var room = RoomState(
                id: roomId, kind: kind, version: Int64(meta["ver"] ?? "") ?? 0, lastSeq: Int64(meta["seq"] ?? "") ?? 0,
                pinCount: Int(meta["pins"] ?? "") ?? 0)
            if let pinOf, replies[extra].string != nil { room.pins.insert(pinOf) }
            if let reactionsOf, let text = replies[extra + (pinOf == nil ? 0 : 1)].string {
                room.reactions[RoomState.reactionKey(reactionsOf, actor)] = RoomState.decodeReactions(text)
            }
            let memberValues: [(String, String)] =
                members.map { ids in zip(ids, replies[1].array ?? []).compactMap { id, v in v.string.map { (id, $0) } } }
                ?? Self.pairs(replies[1]).map { ($0.key, $0.value) }
            for (userId, encoded) in memberValues {
                if let member = RoomState.Member(encoded: encoded) { room.members[userId] = member }
            }
            if !messages.isEmpty {
                var missing: [String] = []
                for (id, value) in zip(messages, replies[2].array ?? []) {
                    if let text = value.string, let record = RoomState.MessageRecord(encoded: text) {
                        room.messages[id] = record
                    } else {
                        missing.append(id)
                    }
                }
                // `ev` counts the room's evictions: a room that never had one has every message's record in Redis, so an
                // id missing there is no message at all, and the archive is not asked.
                if let evictions = replies[3].string, !missing.isEmpty, let archive = reader.archive {
                    for (id, record) in try await archive.messageRecords(roomId: roomId, ids: missing) {
                        room.messages[id] = record
                        state.coldMessages[id] = evictions
                    }
                }
            }
            state.room = room
        }
        if !knownUsers.isEmpty, let found = replies.last?.array {
            state.knownUsers = Set(zip(knownUsers, found).compactMap { id, value in value.isNull ? nil : id })
        }
        return state
    }

    /// Whether a user is registered (users are never deleted, so this needs no atomicity).
    public func userExists(_ userId: String) async throws -> Bool {
        let users = guardKeys(partitioning.userPartition)
        return try await redis.command(["HEXISTS", users.users, userId]).int == 1
    }

    /// A user's member record in a room as the log's guard state holds it now (nil: none).
    public func member(roomId: String, userId: String) async throws -> RoomState.Member? {
        let keys = guardKeys(partitioning.partition(ofRoom: roomId))
        return try await redis.command(["HGET", keys.members(roomId), userId]).string.flatMap(RoomState.Member.init(encoded:))
    }

    /// The rooms a user is joined to, with the log position they are true at: per
    /// partition, the set and the stream's last entry are read in one MULTI/EXEC (the
    /// same slot), so no append can fall between them. The WebSocket hub starts a
    /// connection's membership from it and winds it back to where it needs it.
    public func joinedRooms(of userId: String) async throws -> (rooms: Set<String>, at: LogPosition) {
        var commands: [[String]] = []
        for partition in 0..<partitioning.count {
            commands += [
                ["MULTI"], ["SMEMBERS", guardKeys(partition).joined(userId)],
                ["XREVRANGE", keys.stream(partition), "+", "-", "COUNT", "1"], ["EXEC"],
            ]
        }
        let replies = try await redis.pipeline(commands)
        var rooms: Set<String> = []
        var position = LogPosition.start(partitions: partitioning.count)
        for partition in 0..<partitioning.count {
            guard let exec = try replies[partition * 4 + 3].orThrow().array, exec.count == 2 else {
                throw Failure(description: "MULTI/EXEC of partition \(partition) answered \(replies[partition * 4 + 3])")
            }
            rooms.formUnion(try exec[0].orThrow().array?.compactMap(\.string) ?? [])
            position.entryIDs[partition] = LogReader.firstID(try exec[1].orThrow())
        }
        return (rooms, position)
    }

    /// Whether the guard state holds a record of `messageId` in `roomId` (a message not evicted to the archive yet).
    public func messageRecorded(roomId: String, messageId: String) async throws -> Bool {
        let keys = guardKeys(partitioning.partition(ofRoom: roomId))
        return try await redis.command(["HEXISTS", keys.messages(roomId), messageId]).int == 1
    }

    /// Whether a room exists in the log.
    public func roomExists(_ roomId: String) async throws -> Bool {
        let keys = guardKeys(partitioning.partition(ofRoom: roomId))
        return try await redis.command(["HEXISTS", keys.room(roomId), "kind"]).int == 1
    }

    static func pairs(_ reply: RedisValue) -> [String: String] {
        let flat = reply.array ?? []
        var map: [String: String] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let k = flat[i].string, let v = flat[i + 1].string { map[k] = v }
            i += 2
        }
        return map
    }
}
