import Drivers
import Events
import Foundation

extension EventLog {
    /// Rebuilds the whole guard state from the log alone: deletes every guard key, folds
    /// each partition's events with `Rules.evolve` and writes what live appends would have
    /// written. Run it with appends stopped (an operator's repair, or after restoring a log).
    /// Returns the number of events folded.
    @discardableResult
    public func rebuildGuards(batch: Int = 5000) async throws -> Int {
        try await deleteGuards()
        var folded = 0
        let rebuildMark = String(Int64(Date().timeIntervalSince1970 * 1000) * 1000)
        for partition in 0..<partitioning.count {
            let keys = guardKeys(partition)
            // Records of messages last changed up to here left the guard state for the archive (`LogArchiver`): they stay there.
            let evictedThrough = try await reader.archive?.evictedThrough(partition: partition) ?? "0-0"
            var rooms: [String: RoomState] = [:]
            var coldRooms: Set<String> = []
            var after = "0-0"
            var head = HashChain.genesis
            while true {
                let events = try await read(partition: partition, after: after, count: batch)
                let archived = try await archivedRecords(of: events, through: evictedThrough)
                var commands: [[String]] = []
                var seenReactions: Set<String> = []  // this batch's: their state is in `rooms`, not yet in Redis
                for logged in events {
                    let event = logged.event
                    let roomId = event.roomId ?? ""
                    if case .messageDeleted(let deleted) = event.data, rooms[roomId]?.messages[deleted.messageId] == nil {
                        // Sent in an earlier batch (whose records are written) or evicted: its record is needed to delete it.
                        let record = try await messageRecord(roomId: roomId, messageId: deleted.messageId, keys: keys)
                        rooms[roomId]?.messages[deleted.messageId] = record
                    }
                    switch event.data {
                    case .reactionAdded(let reaction), .reactionRemoved(let reaction):
                        // Reactions are cleared at each batch's end like messages: an earlier batch's are in Redis.
                        let field = RoomState.reactionKey(reaction.messageId, event.actorId)
                        if rooms[roomId] != nil, seenReactions.insert(roomId + "\u{0}" + field).inserted,
                            rooms[roomId]?.reactions[field] == nil,
                            let text = try await redis.command(["HGET", keys.reactions(roomId), field]).string
                        {
                            rooms[roomId]?.reactions[field] = RoomState.decodeReactions(text)
                        }
                    default: break
                    }
                    let before = rooms[roomId]
                    let afterState = Rules.evolve(before, event)
                    if let afterState { rooms[roomId] = afterState }
                    var key: ClientMessageKey?
                    if case .messageSent(let sent) = event.data, let id = sent.clientMsgId {
                        key = ClientMessageKey(roomId: roomId, userId: event.actorId, clientMsgId: id)
                    }
                    let evicted = !StreamID.less(evictedThrough, logged.entryID)
                    for effect in GuardEffects.of(event, before: before, after: afterState, clientMessageKey: key, dedupe: dedupe) {
                        if evicted, case .set(let k, let field, _) = effect, k(keys) == keys.messages(roomId),
                            archived.contains(roomId + "\u{0}" + field)
                        {
                            // A value no earlier count had: an append decided before the rebuild cannot match it.
                            if coldRooms.insert(roomId).inserted { commands.append(["HSET", keys.room(roomId), "ev", rebuildMark]) }
                            continue
                        }
                        switch effect {
                        case .expireAt(let k, let ms): commands.append(["PEXPIREAT", k(keys), String(ms)])
                        case .set(let k, let field, let value): commands.append(["HSET", k(keys), field, value])
                        case .remove(let k, let field): commands.append(["HDEL", k(keys), field])
                        case .entryID(let k, let field): commands.append(["HSET", k(keys), field, logged.entryID])
                        case .assignSeq(let k): commands.append(["HSET", k(keys), "seq", String(event.seq ?? 0)])
                        case .addToSet(let k, let value): commands.append(["SADD", k(keys), value])
                        case .removeFromSet(let k, let value): commands.append(["SREM", k(keys), value])
                        }
                    }
                    head = event.hash ?? head
                }
                // Messages never come back, so the rooms fold keeps them only as guard keys.
                for id in rooms.keys {
                    rooms[id]?.messages.removeAll(keepingCapacity: true)
                    rooms[id]?.reactions.removeAll(keepingCapacity: true)
                }
                _ = try await redis.pipeline(commands).map { try $0.orThrow() }
                folded += events.count
                guard events.count == batch, let last = events.last else { break }
                after = last.entryID
            }
            if head != HashChain.genesis { try await redis.command(["SET", keys.head, head]) }
        }
        return folded
    }

    /// The messages (`room\0id`) of `events` up to `through` whose records the archive holds: only those stay out of Redis
    /// (a record the archive lacks, from an archive older than its facts table, is written back).
    private func archivedRecords(of events: [LoggedEvent], through: String) async throws -> Set<String> {
        guard through != "0-0", let archive = reader.archive else { return [] }
        var byRoom: [String: [String]] = [:]
        for logged in events where !StreamID.less(through, logged.entryID) {
            guard let roomId = logged.event.roomId else { continue }
            switch logged.event.data {
            case .messageSent(let sent): byRoom[roomId, default: []].append(sent.messageId)
            case .messageDeleted(let deleted): byRoom[roomId, default: []].append(deleted.messageId)
            default: continue
            }
        }
        var archived: Set<String> = []
        for (roomId, ids) in byRoom {
            for id in try await archive.messageRecords(roomId: roomId, ids: ids).keys { archived.insert(roomId + "\u{0}" + id) }
        }
        return archived
    }

    /// A message's record as the guard state or, once evicted, the archive holds it (nil: no such message).
    private func messageRecord(roomId: String, messageId: String, keys: GuardKeys) async throws -> RoomState.MessageRecord? {
        if let text = try await redis.command(["HGET", keys.messages(roomId), messageId]).string {
            return RoomState.MessageRecord(encoded: text)
        }
        return try await reader.archive?.messageRecords(roomId: roomId, ids: [messageId])[messageId]
    }

    /// Every guard-state key and its contents, for comparing live guard state with a rebuild.
    public func guardSnapshot() async throws -> [String: [String: String]] {
        var snapshot: [String: [String: String]] = [:]
        for key in try await guardKeys() {
            let type = try await redis.command(["TYPE", key]).string
            if type == "hash" {
                snapshot[key] = Self.pairs(try await redis.command(["HGETALL", key]))
            } else if type == "set" {
                let members = try await redis.command(["SMEMBERS", key]).array?.compactMap(\.string) ?? []
                snapshot[key] = Dictionary(uniqueKeysWithValues: members.map { ($0, "") })
            } else {
                snapshot[key] = ["": try await redis.command(["GET", key]).string ?? ""]
            }
        }
        return snapshot
    }

    private func guardKeys() async throws -> [String] {
        try await redis.keys(matching: keys.guardPattern)
    }

    private func deleteGuards() async throws {
        try await redis.deleteKeys(matching: keys.guardPattern)
    }
}
