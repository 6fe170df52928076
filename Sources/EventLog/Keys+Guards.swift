import Events

/// The Redis keys of the guard state beside the log (`Keys` names the others). Every key
/// of a partition carries the partition's hash tag `{p}`, like its stream, so that one
/// script may touch them all under Redis Cluster.
///
/// - `parley:g:{p}:head`: the hash of the partition's last event (the chain head)
/// - `parley:g:{p}:room:<roomId>`: `kind`, `seq` (last message seq), `ver` (membership version)
/// - `parley:g:{p}:members:<roomId>`: userId → `role:state:since`
/// - `parley:g:{p}:msgs:<roomId>`: messageId → `senderId|deleted`
/// - `parley:g:{p}:cmid:<roomId>`: `userId clientMsgId` → entry id of the message.sent
/// - `parley:g:{p}:direct`: `userA|userB` → direct room id (the direct-room index)
/// - `parley:g:{p}:joined:<userId>`: the rooms of this partition the user is joined to
///   (the WebSocket hub reads it when the user connects)
/// - `parley:g:{0}:usernames`: username → userId; `parley:g:{0}:users`: userId → username
public struct GuardKeys: Sendable {
    public let partition: Int
    public let namespace: String

    public init(partition: Int, namespace: String = "parley") {
        self.partition = partition
        self.namespace = namespace
    }

    var tag: String { "{\(partition)}" }
    var prefix: String { "\(namespace):g:\(tag)" }
    public var stream: String { Keys(namespace: namespace).stream(partition) }
    public var head: String { "\(prefix):head" }
    public func room(_ id: String) -> String { "\(prefix):room:\(id)" }
    public func members(_ id: String) -> String { "\(prefix):members:\(id)" }
    public func messages(_ id: String) -> String { "\(prefix):msgs:\(id)" }
    public func clientMessages(_ id: String) -> String { "\(prefix):cmid:\(id)" }
    public var direct: String { "\(prefix):direct" }
    public func joined(_ userId: String) -> String { "\(prefix):joined:\(userId)" }
    public var usernames: String { "\(prefix):usernames" }
    public var users: String { "\(prefix):users" }

    /// The field of a client message id in `clientMessages`.
    public static func clientMessageField(_ key: ClientMessageKey) -> String { "\(key.userId) \(key.clientMsgId)" }

    /// The key and field of a fact's guard value.
    func location(of subject: Fact.Subject) -> (key: String, field: String) {
        switch subject {
        case .room(let roomId, let field): return (room(roomId), field)
        case .member(let roomId, let userId): return (members(roomId), userId)
        case .message(let roomId, let messageId): return (messages(roomId), messageId)
        case .username(let name): return (usernames, name)
        }
    }
}
