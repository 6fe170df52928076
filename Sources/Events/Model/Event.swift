import Foundation

/// One event of the log (CONTRACT section 5): the envelope and its typed data. The log
/// assigns `seq` (messages), `prevHash` and `hash` when it appends; before that they are nil.
public struct Event: Sendable, Equatable {
    /// The event's own id (`DecisionContext.newID`, 32 hex digits in production); a message's id is in `MessageSent`.
    public var id: String
    /// The schema version of `data` for this type; always `type.currentVersion` once read, older ones being upcast.
    public var v: Int
    /// When the command was decided (`DecisionContext.now`), kept to the millisecond and written in UTC.
    public var at: Date
    /// Who acted (sender, inviter, remover, …); for `user.registered`, the new user.
    public var actorId: String
    /// The room the event belongs to, which picks its partition; nil for `user.registered`, kept in the user partition.
    public var roomId: String?
    /// The message's number in its room (1, 2, 3 … with no gaps), set by the log for `message.sent` only; nil before.
    public var seq: Int64?
    /// The typed payload; its case determines `type`.
    public var data: EventData
    /// This event's link in its partition's chain (`HashChain.link`, 40 hex digits), set by the log; nil before the append.
    public var hash: String?
    /// The `hash` of the event before it in its partition (`HashChain.genesis` for the first), set by the log; nil before.
    public var prevHash: String?

    /// The wire type (`message.sent`, …), derived from `data` so that the two never disagree.
    public var type: EventType { data.type }

    /// `v` defaults to the type's current version; leave `seq`, `hash` and `prevHash` nil for an event not appended yet.
    public init(
        id: String, at: Date, actorId: String, roomId: String? = nil, seq: Int64? = nil, data: EventData,
        v: Int? = nil, hash: String? = nil, prevHash: String? = nil
    ) {
        self.id = id
        self.v = v ?? data.type.currentVersion
        self.at = at
        self.actorId = actorId
        self.roomId = roomId
        self.seq = seq
        self.data = data
        self.hash = hash
        self.prevHash = prevHash
    }
}

extension Event: Codable {
    enum CodingKeys: String, CodingKey {
        case id, type, v, at, actorId, roomId, seq, data, hash, prevHash
    }

    /// Thrown while decoding an event written with an older schema version: the codec
    /// then upcasts its `data` and decodes again.
    struct NeedsUpcast: Error {
        let type: EventType
        let version: Int
    }

    /// Reads an event of the type's current version; older versions are left to `EventCodec.decode`, which upcasts them,
    /// and a version newer than this build knows is an error.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(EventType.self, forKey: .type)
        let v = try container.decode(Int.self, forKey: .v)
        if v < type.currentVersion { throw NeedsUpcast(type: type, version: v) }
        guard v == type.currentVersion else {
            throw DecodingError.dataCorruptedError(
                forKey: .v, in: container, debugDescription: "\(type.rawValue) v\(v) is newer than this build knows")
        }
        self.id = try container.decode(String.self, forKey: .id)
        self.v = v
        self.at = try container.decode(Date.self, forKey: .at)
        self.actorId = try container.decode(String.self, forKey: .actorId)
        self.roomId = try container.decodeIfPresent(String.self, forKey: .roomId)
        self.seq = try container.decodeIfPresent(Int64.self, forKey: .seq)
        self.hash = try container.decodeIfPresent(String.self, forKey: .hash)
        self.prevHash = try container.decodeIfPresent(String.self, forKey: .prevHash)
        func data<T: Decodable>(_: T.Type) throws -> T { try container.decode(T.self, forKey: .data) }
        switch type {
        case .userRegistered: self.data = .userRegistered(try data(UserRegistered.self))
        case .roomCreated: self.data = .roomCreated(try data(RoomCreated.self))
        case .memberInvited: self.data = .memberInvited(try data(MemberChange.self))
        case .inviteDeclined: self.data = .inviteDeclined(try data(MemberChange.self))
        case .memberJoined: self.data = .memberJoined(try data(MemberChange.self))
        case .memberLeft: self.data = .memberLeft(try data(MemberChange.self))
        case .memberRemoved: self.data = .memberRemoved(try data(MemberChange.self))
        case .memberRoleChanged: self.data = .memberRoleChanged(try data(MemberChange.self))
        case .roomRenamed: self.data = .roomRenamed(try data(RoomRenamed.self))
        case .messageSent: self.data = .messageSent(try data(MessageSent.self))
        case .messageEdited: self.data = .messageEdited(try data(MessageEdited.self))
        case .messageDeleted: self.data = .messageDeleted(try data(MessageDeleted.self))
        case .roomRead: self.data = .roomRead(try data(RoomRead.self))
        case .reactionAdded: self.data = .reactionAdded(try data(Reaction.self))
        case .reactionRemoved: self.data = .reactionRemoved(try data(Reaction.self))
        case .messagePinned: self.data = .messagePinned(try data(MessagePin.self))
        case .messageUnpinned: self.data = .messageUnpinned(try data(MessagePin.self))
        case .memberBanned: self.data = .memberBanned(try data(MemberChange.self))
        case .memberUnbanned: self.data = .memberUnbanned(try data(MemberChange.self))
        case .memberMuted: self.data = .memberMuted(try data(MemberChange.self))
        case .memberUnmuted: self.data = .memberUnmuted(try data(MemberChange.self))
        case .userBlocked: self.data = .userBlocked(try data(UserBlock.self))
        case .userUnblocked: self.data = .userUnblocked(try data(UserBlock.self))
        }
    }

    /// Writes the stored layout: `seq`, `prevHash` and `hash` only when set (sorted keys come from `EventCodec`'s encoder).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(type, forKey: .type)
        try container.encode(v, forKey: .v)
        try container.encode(at, forKey: .at)
        try container.encode(actorId, forKey: .actorId)
        try container.encodeIfPresent(roomId, forKey: .roomId)
        try container.encodeIfPresent(seq, forKey: .seq)
        switch data {
        case .userRegistered(let d): try container.encode(d, forKey: .data)
        case .roomCreated(let d): try container.encode(d, forKey: .data)
        case .memberInvited(let d), .inviteDeclined(let d), .memberJoined(let d), .memberLeft(let d),
            .memberRemoved(let d), .memberRoleChanged(let d), .memberBanned(let d), .memberUnbanned(let d), .memberMuted(let d),
            .memberUnmuted(let d):
            try container.encode(d, forKey: .data)
        case .userBlocked(let d), .userUnblocked(let d): try container.encode(d, forKey: .data)
        case .roomRenamed(let d): try container.encode(d, forKey: .data)
        case .messageSent(let d): try container.encode(d, forKey: .data)
        case .messageEdited(let d): try container.encode(d, forKey: .data)
        case .messageDeleted(let d): try container.encode(d, forKey: .data)
        case .roomRead(let d): try container.encode(d, forKey: .data)
        case .reactionAdded(let d), .reactionRemoved(let d): try container.encode(d, forKey: .data)
        case .messagePinned(let d), .messageUnpinned(let d): try container.encode(d, forKey: .data)
        }
        try container.encodeIfPresent(prevHash, forKey: .prevHash)
        try container.encodeIfPresent(hash, forKey: .hash)
    }
}
