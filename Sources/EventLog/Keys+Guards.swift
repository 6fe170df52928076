import Events
import Foundation

/// The Redis keys of the guard state beside the log (`Keys` names the others). Every key
/// of a partition carries the partition's hash tag `{p}` (`{t}` on a cluster: `PartitionTags`),
/// like its stream, so that one script may touch them all under Redis Cluster.
///
/// - `parley:g:{p}:head`: the hash of the partition's last event (the chain head)
/// - `parley:g:{p}:room:<roomId>`: `kind`, `seq` (last message seq), `ver` (membership version)
/// - `parley:g:{p}:members:<roomId>`: userId → `role:state:since`
/// - `parley:g:{p}:msgs:<roomId>`: messageId → `senderId|deleted`
/// - `parley:g:{p}:rx:<roomId>`: `messageId userId` → that user's reactions to the message (sorted emoji, space-separated);
///   a user's last reaction removed removes the field, so it holds at most one field per message and reacting user
/// - `parley:g:{p}:pins:<roomId>`: messageId → `1` while the message is pinned (at most `maxPinsPerRoom`); the room hash
///   keeps their number as `pins`
/// - `parley:g:{p}:blocks:<directRoomId>`: userId → `1` while that user blocks the other user of the direct room (which
///   need not exist): at most two fields
/// - `parley:g:{p}:cmid:<roomId>:<bucket>`: `userId clientMsgId` → entry id of the message.sent, one hash per
///   `PARLEY_DEDUPE_SECONDS` window of time (`DedupeWindow`), expiring once no send can be a repeat of one in it
/// - `parley:g:{p}:direct`: `userA|userB` → direct room id (the direct-room index)
/// - `parley:g:{p}:joined:<userId>`: the rooms of this partition the user is joined to
///   (the WebSocket hub reads it when the user connects)
/// - `parley:g:{0}:usernames`: username → userId; `parley:g:{0}:users`: userId → username
/// - `parley:g:{p}:lost`: projector → what it found, while a read model holds entries the
///   stream lost; appends to the partition are refused meanwhile (`EventLog.LostEntries`)
public struct GuardKeys: Sendable {
    /// The partition whose hash tag every key carries.
    public let partition: Int
    /// The first part of every key (`Keys.namespace`).
    public let namespace: String
    /// The partition's hash tag, without its braces.
    public let tag: String

    /// The guard keys of `partition`; most code takes them from `Keys.guards(_:)`. `tag` is the partition's number
    /// unless given (one Redis).
    public init(partition: Int, namespace: String = "parley", tag: String? = nil) {
        self.partition = partition
        self.namespace = namespace
        self.tag = tag ?? String(partition)
    }

    var prefix: String { "\(namespace):g:{\(tag)}" }
    /// The partition's stream, which the append script writes beside these keys.
    public var stream: String { "\(namespace):log:{\(tag)}" }
    /// The hash of the partition's last event: the next append chains to it.
    public var head: String { "\(prefix):head" }
    /// A room's kind, last seq and membership version.
    public func room(_ id: String) -> String { "\(prefix):room:\(id)" }
    /// A room's member records, `role:state:since` by user id.
    public func members(_ id: String) -> String { "\(prefix):members:\(id)" }
    /// A room's messages, `senderId|deleted` by message id (who may edit or delete).
    public func messages(_ id: String) -> String { "\(prefix):msgs:\(id)" }
    /// A room's reactions: one field per message and reacting user.
    public func reactions(_ id: String) -> String { "\(prefix):rx:\(id)" }
    /// A room's pinned messages.
    public func pins(_ id: String) -> String { "\(prefix):pins:\(id)" }
    /// Who blocks whom between the two users of a direct room.
    public func blocks(_ id: String) -> String { "\(prefix):blocks:\(id)" }
    /// A room's client message ids of one dedupe window: a repeated send finds its first message here.
    public func clientMessages(_ id: String, bucket: Int64) -> String { "\(prefix):cmid:\(id):\(bucket)" }
    /// The direct-room index of the partition: one room per pair of users.
    public var direct: String { "\(prefix):direct" }
    /// The rooms of this partition a user is joined to (the hub's start of a connection).
    public func joined(_ userId: String) -> String { "\(prefix):joined:\(userId)" }
    /// Lowercased username to user id: uniqueness checked atomically (partition 0 only).
    public var usernames: String { "\(prefix):usernames" }
    /// User id to username: whether a user exists (partition 0 only).
    public var users: String { "\(prefix):users" }
    /// Set (one field per projector, expiring unless renewed) while a projector finds its read model ahead of the
    /// stream: the append script refuses to append to the partition then.
    public var lostEntries: String { "\(prefix):lost" }

    /// The field of a client message id in `clientMessages`.
    public static func clientMessageField(_ key: ClientMessageKey) -> String { "\(key.userId) \(key.clientMsgId)" }

    /// The key and field of a fact's guard value.
    func location(of subject: Fact.Subject) -> (key: String, field: String) {
        switch subject {
        case .room(let roomId, let field): return (room(roomId), field)
        case .member(let roomId, let userId): return (members(roomId), userId)
        case .message(let roomId, let messageId): return (messages(roomId), messageId)
        case .reactions(let roomId, let messageId, let userId): return (reactions(roomId), RoomState.reactionKey(messageId, userId))
        case .pin(let roomId, let messageId): return (pins(roomId), messageId)
        case .block(let roomId, let userId): return (blocks(roomId), userId)
        case .username(let name): return (usernames, name)
        }
    }
}

/// How long a `clientMsgId` is remembered (`PARLEY_DEDUPE_SECONDS`): time is cut into windows of that length; a send's id
/// is kept in its window's hash, and a send looks in its own window's and the one before. A repeat within the window's
/// length is always found; one more than twice that length later is a new message. Each hash expires at the end of the
/// window after its own, so a room's ids take at most two windows of sends.
public struct DedupeWindow: Sendable, Equatable {
    /// The window's length in milliseconds.
    public let milliseconds: Int64

    /// Windows of `seconds` (at least 1).
    public init(seconds: Int) {
        self.milliseconds = Int64(max(1, seconds)) * 1000
    }

    /// The window of an event at `date`.
    public func bucket(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) / milliseconds }
    /// When a window's hash may go: the end of the next window (Unix milliseconds, for `PEXPIREAT`).
    public func expiry(of bucket: Int64) -> Int64 { (bucket + 2) * milliseconds }
}
