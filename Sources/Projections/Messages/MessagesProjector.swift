import Drivers
import EventLog
import Events
import Foundation

/// Messages into MongoDB, one document per message (CONTRACT section 2): `_id` (message
/// id), `roomId`, `seq`, `senderId`, `body`, `clientMsgId`, `sentAt`, `editedAt`,
/// `deleted`, `replyTo`, plus `firstBody` and `edits` (every edit's body and time) for the
/// edit history, `reactions` (`emoji userId` pairs, oldest first: `MessageRecord.reactionGroups` counts them), and `pos`,
/// the log position of the last event applied to the document. A deletion clears every body and the reactions (the log
/// keeps them for audits).
///
/// MongoDB has no transactions here, so each write is idempotent on its own: a send is an
/// upsert that only inserts, and an edit or deletion applies only if the document's `pos`
/// is older than the event. One ordered bulk write per batch, then the checkpoint.
public struct MessagesProjector: Projector {
    /// `messages` by default: the consumer group, the checkpoint ids (`<name>:<partition>`), the metrics label; a shadow
    /// keeps the live projector's name.
    public let name: String
    /// The scheduler priority of its batches: `.live` for the server, `.rebuild` for the replayer's shadow and verify copies.
    public let priority: ProjectionPriority
    /// Only message events change the collection; the others only move the checkpoint.
    public let eventTypes: Set<EventType> = [.messageSent, .messageEdited, .messageDeleted, .reactionAdded, .reactionRemoved]
    /// Where it writes: the live collection the pointer names (`MessagesLocation`), or a fixed one for the replayer's
    /// shadow or verify copy.
    public let location: MessagesLocation
    let mongo: MongoClient

    /// The live read model over `collection` (the pointer's base, `PARLEY_MONGO_COLLECTION`); the checkpoints are in
    /// `<area>_checkpoints` beside whichever collection is live. Nothing is created before `prepare()`.
    public init(mongo: MongoClient, collection: String = "messages", name: String = "messages", priority: ProjectionPriority = .live) {
        self.init(mongo: mongo, location: MessagesLocation(mongo: mongo, base: collection), name: name, priority: priority)
    }

    /// A projector writing where `location` says (`MessagesLocation(mongo:fixed:)` for a shadow or scratch area).
    public init(mongo: MongoClient, location: MessagesLocation, name: String = "messages", priority: ProjectionPriority = .live) {
        self.mongo = mongo
        self.location = location
        self.name = name
        self.priority = priority
    }

    /// One version of the read model: its documents and its checkpoints.
    public struct Area: Sendable {
        /// The collection's name (`messages`, `messages_v3`, `messages_verify` …).
        public let name: String
        /// The message documents.
        public let documents: MongoCollection
        /// `<name>_checkpoints`: one document per partition, `<projector>:<partition>`.
        public let checkpoints: MongoCollection
    }

    func area(_ name: String) -> Area {
        Area(name: name, documents: mongo.collection(name), checkpoints: mongo.collection(name + "_checkpoints"))
    }

    /// The area in use now, as last read (the projector's view between pointer reads).
    public func currentArea() async throws -> Area { area(try await location.area(maxAge: nil)) }

    /// The area the pointer names now (a fixed location's one collection).
    func liveArea() async throws -> Area { area(try await location.refresh()) }

    /// The message documents of the live area, as the pointer names it now.
    public func documents() async throws -> MongoCollection { try await liveArea().documents }

    /// Creates the unique index on `roomId` + `seq` that history pages sort by; run at every start, so it must stay idempotent.
    public func prepare() async throws {
        try await liveArea().documents.createIndex(["roomId": 1, "seq": 1], unique: true)
        // Thread pages: a root's replies in order.
        try await liveArea().documents.createIndex(["threadRootId": 1, "seq": 1], unique: false)
    }

    /// The entry id recorded in `<area>_checkpoints` under `<name>:<partition>` after each batch; `0-0` when none yet.
    public func checkpoint(partition: Int) async throws -> String {
        try await liveArea().checkpoints.findOne(["_id": .string("\(name):\(partition)")])?["position"]?.stringValue ?? "0-0"
    }

    /// The most edits a message's document keeps (its newest ones); its body is always the latest.
    public static let maxEdits: Int32 = 100

    /// A log position as a string that sorts like the position (for `pos` comparisons).
    static func sortablePosition(_ entryID: String) -> String {
        let parts = entryID.split(separator: "-")
        let ms = parts.first.map(String.init) ?? "0"
        let seq = parts.count > 1 ? String(parts[1]) : "0"
        return String(repeating: "0", count: max(0, 15 - ms.count)) + ms + "-" + String(repeating: "0", count: max(0, 10 - seq.count)) + seq
    }

    /// Records that lease epoch `epoch` now writes `partition` (the checkpoint document keeps the highest epoch seen);
    /// throws `ProjectionFenced` when a newer one already does.
    public func fence(partition: Int, epoch: Int64) async throws {
        try await fence(liveArea(), partition: partition, epoch: epoch)
    }

    private func fence(_ area: Area, partition: Int, epoch: Int64) async throws {
        let id = BSON.string("\(name):\(partition)")
        try await area.checkpoints.updateOne(filter: ["_id": id], update: ["$max": ["epoch": .int64(epoch)]], upsert: true)
        try await refuseOlder(than: try await area.checkpoints.findOne(["_id": id]), partition: partition, epoch: epoch)
    }

    /// The area a batch at `epoch` may be written to. Its checkpoint is read first: a newer epoch there refuses the
    /// batch; `movedTo` (set by a swap) or no checkpoint at all (the area was dropped after a swap) sends the projector
    /// to the collection the pointer names now, fenced there with its epoch before anything is written.
    private func writableArea(partition: Int, epoch: Int64) async throws -> Area {
        guard epoch > 0 else { return try await currentArea() }
        // The pointer is read again at most once a second: a swap whose replayer died before it marked the old area
        // `movedTo` still reaches this projector.
        var area = self.area(try await location.area(maxAge: MessagesLocation.readerRefresh))
        let id = BSON.string("\(name):\(partition)")
        for _ in 0..<3 {
            let checkpoint = try await area.checkpoints.findOne(["_id": id])
            try refuseOlder(than: checkpoint, partition: partition, epoch: epoch)
            if let checkpoint, checkpoint["movedTo"] == nil { return area }
            let pointed = try await liveArea()
            if pointed.name == area.name, checkpoint != nil { return area }
            if pointed.name == area.name {
                // Our fence is gone and the pointer did not move: the collection was dropped under us. Take the
                // partition again (a new epoch, a new fence) rather than write into nothing.
                throw ProjectionFenced(partition: partition, epoch: epoch, seen: epoch)
            }
            try await fence(pointed, partition: partition, epoch: epoch)
            area = pointed
        }
        throw ProjectionFenced(partition: partition, epoch: epoch, seen: epoch)
    }

    private func refuseOlder(than checkpoint: BSONDocument?, partition: Int, epoch: Int64) throws {
        let seen = checkpoint?["epoch"]?.int64Value ?? 0
        if seen > epoch { throw ProjectionFenced(partition: partition, epoch: epoch, seen: seen) }
    }

    /// One ordered bulk write for the batch, then the checkpoint. A send only inserts and an edit or deletion applies only
    /// over an older `pos`, so a batch delivered twice changes nothing the second time. MongoDB has no transaction here
    /// to hold the epoch with the writes: the checkpoint's epoch is checked before them, and the checkpoint itself is
    /// written only under an epoch no newer than ours (a write that slips in between is one a newer holder has also
    /// read and applies again: each is idempotent).
    public func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64) async throws {
        let id = BSON.string("\(name):\(partition)")
        let area = try await writableArea(partition: partition, epoch: epoch)
        var writes: [MongoWrite] = []
        for logged in events {
            let event = logged.event
            let pos = BSON.string(Self.sortablePosition(logged.entryID))
            let at = BSON.date(event.at)
            switch event.data {
            case .messageSent(let sent):
                var document: BSONDocument = [
                    "roomId": .string(event.roomId ?? ""), "seq": .int64(event.seq ?? 0), "senderId": .string(event.actorId),
                    "body": .string(sent.body), "firstBody": .string(sent.body), "clientMsgId": sent.clientMsgId.map(BSON.string) ?? .null,
                    "sentAt": at, "editedAt": .null, "deleted": false, "replyTo": sent.replyTo.map(BSON.string) ?? .null,
                    "edits": [], "reactions": [], "pos": pos,
                ]
                document["partition"] = .int32(Int32(partition))
                if let root = sent.threadRootId { document["threadRootId"] = .string(root) }
                if let mentions = sent.mentions { document["mentions"] = .array(mentions.map(BSON.string)) }
                writes.append(
                    .updateOne(filter: ["_id": .string(sent.messageId)], update: ["$setOnInsert": .document(document)], upsert: true))
                if let root = sent.threadRootId {
                    // The root counts its thread's replies; `pos` makes a batch applied twice count each once.
                    writes.append(
                        .updateOne(
                            filter: ["_id": .string(root), "pos": ["$lt": pos]],
                            update: [
                                "$inc": ["thread.replyCount": .int64(1)],
                                "$set": ["thread.lastReplyAt": at, "thread.lastReplySeq": .int64(event.seq ?? 0), "pos": pos],
                            ], upsert: false))
                }
            case .messageEdited(let edited):
                writes.append(
                    .updateOne(
                        filter: ["_id": .string(edited.messageId), "pos": ["$lt": pos], "deleted": false],
                        update: [
                            "$set": ["body": .string(edited.body), "editedAt": at, "pos": pos],
                            // The newest `maxEdits` only: a message edited without end must not outgrow a document
                            // (the log keeps every edit for audits).
                            "$push": ["edits": ["$each": [["body": .string(edited.body), "at": at]], "$slice": .int32(-Self.maxEdits)]],
                        ],
                        upsert: false))
            case .messageDeleted(let deleted):
                writes.append(
                    .updateOne(
                        filter: ["_id": .string(deleted.messageId), "pos": ["$lt": pos]],
                        update: [
                            "$set": [
                                "deleted": true, "deletedAt": at, "deletedBy": .string(event.actorId), "body": .null,
                                "firstBody": .null, "edits": [], "reactions": [], "pos": pos,
                            ]
                        ],
                        upsert: false))
            case .reactionAdded(let reaction), .reactionRemoved(let reaction):
                // A pair of strings, not a subdocument: `$addToSet` and `$pull` then compare plain values, and the pairs
                // keep the order reactions came in (the rules refuse a reaction to a deleted message).
                let pair = BSON.string(MessageRecord.reactionPair(emoji: reaction.emoji, userId: event.actorId))
                let change: BSONDocument =
                    event.type == .reactionAdded ? ["$addToSet": ["reactions": pair]] : ["$pull": ["reactions": pair]]
                var update = change
                update["$set"] = ["pos": pos]
                writes.append(
                    .updateOne(
                        filter: ["_id": .string(reaction.messageId), "pos": ["$lt": pos], "deleted": false], update: update, upsert: false))
            default:
                continue
            }
        }
        try await area.documents.bulkWrite(writes, ordered: true)
        if let last = events.last {
            do {
                // A swap that marked this area `movedTo` after the check above makes the filter miss: the batch is
                // refused, left unacknowledged, and applied again in the new area.
                // Under a lease the fence made the document: no upsert, so a write into an area dropped meanwhile cannot
                // make a checkpoint there (the batch is refused, and applied again where the pointer says).
                let written = try await area.checkpoints.updateOne(
                    filter: ["_id": id, "epoch": ["$lte": .int64(epoch)], "movedTo": ["$exists": false]],
                    update: ["$set": ["position": .string(last.entryID)], "$max": ["epoch": .int64(epoch)]], upsert: epoch == 0)
                if epoch > 0, written.matched == 0 {
                    try refuseOlder(than: try await area.checkpoints.findOne(["_id": id]), partition: partition, epoch: epoch)
                    throw ProjectionFenced(partition: partition, epoch: epoch, seen: epoch)
                }
            } catch let error as DriverError where error.code == .duplicateKey {
                // Without a lease (a rebuild's area) the upsert met an existing document: its epoch is newer.
                try refuseOlder(than: try await area.checkpoints.findOne(["_id": id]), partition: partition, epoch: epoch)
                throw error
            }
        }
    }
}

/// A message as readers get it (CONTRACT section 3).
public struct MessageRecord: Codable, Sendable, Equatable {
    /// The message's id (`MessageSent.messageId`), the document's `_id`.
    public var id: String
    /// The room it was sent to.
    public var roomId: String
    /// Its number in the room (1, 2, 3 … with no gaps): history pages are cut by it (`before`, `after`).
    public var seq: Int64
    /// Who sent it.
    public var senderId: String
    /// nil once deleted.
    public var body: String?
    /// The sender's idempotency key; nil when the client gave none.
    public var clientMsgId: String?
    /// When it was sent (the `message.sent` event's `at`, to the millisecond).
    public var sentAt: Date
    /// When it was last edited; nil if never.
    public var editedAt: Date?
    /// Whether it was deleted: then `body` is nil and `edits` empty (the log keeps the texts for audits).
    public var deleted: Bool
    /// The id of the message of the same room it answers; nil for none.
    public var replyTo: String?
    /// Every edit, oldest first (empty when never edited, or once deleted).
    public var edits: [Edit]
    /// Every reaction as `emoji userId`, in the order they came (empty once deleted).
    public var reactions: [String]
    /// For a reply in a thread: its root's id.
    public var threadRootId: String?
    /// The users it mentions, in the order the sender gave them.
    public var mentions: [String]
    /// For a thread's root: how many replies it has had, and the last one's time and seq; nil before the first.
    public var thread: Thread?

    /// A thread's counters, kept on its root.
    public struct Thread: Codable, Sendable, Equatable {
        /// Replies sent in the thread (a deleted reply still counts).
        public var replyCount: Int64
        /// When the last reply was sent.
        public var lastReplyAt: Date?
        /// The last reply's seq in the room.
        public var lastReplySeq: Int64
    }

    /// One emoji's reactions to a message: who reacted, in the order they did.
    public struct ReactionGroup: Sendable, Equatable {
        /// The reaction.
        public var emoji: String
        /// Who reacted with it, oldest first.
        public var userIds: [String]
    }

    /// The reactions by emoji, in the order each emoji first came.
    public var reactionGroups: [ReactionGroup] {
        var groups: [ReactionGroup] = []
        var index: [String: Int] = [:]
        for pair in reactions {
            guard let space = pair.lastIndex(of: " ") else { continue }
            let emoji = String(pair[..<space])
            let user = String(pair[pair.index(after: space)...])
            if let i = index[emoji] {
                groups[i].userIds.append(user)
            } else {
                index[emoji] = groups.count
                groups.append(ReactionGroup(emoji: emoji, userIds: [user]))
            }
        }
        return groups
    }

    /// How a reaction is kept in the document's `reactions` (an emoji has no white space, a user id none either).
    public static func reactionPair(emoji: String, userId: String) -> String { emoji + " " + userId }

    /// One edit of a message: the text it set and when.
    public struct Edit: Codable, Sendable, Equatable {
        /// The text this edit set.
        public var body: String
        /// When the edit was made (the `message.edited` event's `at`).
        public var at: Date
    }

    init(_ d: BSONDocument) {
        id = d["_id"]?.stringValue ?? ""
        roomId = d["roomId"]?.stringValue ?? ""
        seq = d["seq"]?.int64Value ?? 0
        senderId = d["senderId"]?.stringValue ?? ""
        deleted = Self.bool(d["deleted"])
        body = deleted ? nil : d["body"]?.stringValue
        clientMsgId = d["clientMsgId"]?.stringValue
        sentAt = Self.date(d["sentAt"]) ?? Date(timeIntervalSince1970: 0)
        editedAt = Self.date(d["editedAt"])
        replyTo = d["replyTo"]?.stringValue
        edits = deleted ? [] : (d["edits"]?.arrayValue ?? []).compactMap(Self.edit)
        reactions = deleted ? [] : (d["reactions"]?.arrayValue ?? []).compactMap(\.stringValue)
        threadRootId = d["threadRootId"]?.stringValue
        mentions = (d["mentions"]?.arrayValue ?? []).compactMap(\.stringValue)
        if let t = d["thread"]?.documentValue {
            thread = Thread(
                replyCount: t["replyCount"]?.int64Value ?? 0, lastReplyAt: Self.date(t["lastReplyAt"]),
                lastReplySeq: t["lastReplySeq"]?.int64Value ?? 0)
        }
    }

    // MongoDB keeps what Parley writes as BSON booleans, dates and subdocuments.
    // nx-27017 (the test server) stores a boolean given to `$set` as 1, a date given to
    // `$set` as text ("2026-11-25 14:40:36.267000", UTC) and a subdocument given to `$push`
    // as its JSON text; both forms are read here so the projector runs on either server.

    /// nx-27017 also stores a boolean given to `$set` as the integer 1.
    static func bool(_ value: BSON?) -> Bool {
        if let b = value?.boolValue { return b }
        return (value?.int64Value ?? 0) != 0
    }

    static func date(_ value: BSON?) -> Date? {
        switch value {
        case .date?: return value?.dateValue
        case .string(let text)?: return parseTimestamp(text.replacingOccurrences(of: " ", with: "T") + (text.hasSuffix("Z") ? "" : "Z"))
        case .document(let d)?: return date(d["$date"])
        default: return nil
        }
    }

    static func edit(_ value: BSON) -> Edit? {
        var document = value.documentValue
        if case .string(let json) = value, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] {
            let at = (object["at"] as? [String: Any])?["$date"] as? String ?? object["at"] as? String
            document = ["body": (object["body"] as? String).map(BSON.string) ?? .null, "at": at.map(BSON.string) ?? .null]
        }
        guard let document, let body = document["body"]?.stringValue, let at = date(document["at"]) else { return nil }
        return Edit(body: body, at: at)
    }
}

/// History reads over the messages collection.
public struct MessagesReadModel: Sendable {
    let mongo: MongoClient
    let location: MessagesLocation

    /// Reads the collection the messages projector writes (the pointer's base is `PARLEY_MONGO_COLLECTION`, `messages` by
    /// default); a swap reaches it within `MessagesLocation.readerRefresh`.
    public init(mongo: MongoClient, collection: String = "messages") {
        self.init(mongo: mongo, location: MessagesLocation(mongo: mongo, base: collection))
    }

    /// Reads where `location` says (share the projector's to read the pointer once).
    public init(mongo: MongoClient, location: MessagesLocation) {
        self.mongo = mongo
        self.location = location
    }

    /// Runs `query` on the collection readers follow; when it finds nothing and the pointer has moved since (a read
    /// that waited past a swap and the drop of the collection it named), once more on the one named now.
    private func read<T>(_ query: (MongoCollection) async throws -> T, found: (T) -> Bool) async throws -> T {
        let name = try await location.area()
        let result = try await query(mongo.collection(name))
        guard !found(result), location.followsPointer else { return result }
        let now = try await location.refresh()
        return now == name ? result : try await query(mongo.collection(now))
    }

    /// A page of a room's history: the newest `limit` messages before `before` (all when
    /// nil), newest first; or, with `after`, the oldest `limit` after it, oldest first.
    public func page(roomId: String, before: Int64? = nil, after: Int64? = nil, limit: Int = 50) async throws
        -> (messages: [MessageRecord], hasMore: Bool)
    {
        var filter: BSONDocument = ["roomId": .string(roomId)]
        let ascending = after != nil
        if let after { filter["seq"] = ["$gt": .int64(after)] } else if let before { filter["seq"] = ["$lt": .int64(before)] }
        let documents = try await read(
            { try await $0.find(filter, sort: ["seq": ascending ? 1 : -1], limit: limit + 1) }, found: { !$0.isEmpty })
        return (documents.prefix(limit).map(MessageRecord.init), documents.count > limit)
    }

    /// A page of a thread: the replies after seq `after` (all when nil), oldest first.
    public func thread(roomId: String, rootId: String, after: Int64? = nil, limit: Int = 50) async throws
        -> (messages: [MessageRecord], hasMore: Bool)
    {
        var filter: BSONDocument = ["roomId": .string(roomId), "threadRootId": .string(rootId)]
        if let after { filter["seq"] = ["$gt": .int64(after)] }
        let documents = try await read({ try await $0.find(filter, sort: ["seq": 1], limit: limit + 1) }, found: { !$0.isEmpty })
        return (documents.prefix(limit).map(MessageRecord.init), documents.count > limit)
    }

    /// One message by id; nil when the read model has none (no such message, or not projected yet).
    public func message(id: String) async throws -> MessageRecord? {
        try await read({ try await $0.findOne(["_id": .string(id)]) }, found: { $0 != nil }).map(MessageRecord.init)
    }
}

extension MessagesReadModel {
    /// The messages with these ids that the read model has, by id (a room's pins fetch theirs in one query).
    public func messages(ids: [String]) async throws -> [String: MessageRecord] {
        guard !ids.isEmpty else { return [:] }
        let filter: BSONDocument = ["_id": ["$in": .array(ids.map(BSON.string))]]
        let documents = try await read({ try await $0.find(filter, sort: ["_id": 1], limit: ids.count) }, found: { !$0.isEmpty })
        return Dictionary(documents.map(MessageRecord.init).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }
}
