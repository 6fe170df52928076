import Events
import NIOConcurrencyHelpers

/// The state the last send of a user to a room was decided against, kept so that the next
/// send needs no read before its append (one round trip instead of two). Staleness is
/// harmless: the decision's facts are checked atomically by the append, a changed fact
/// sends the command back to a fresh read, and a refusal decided on cached state is
/// decided again on fresh state before it is reported.
final class SendStateCache: Sendable {
    private let entries = NIOLockedValueBox<[String: DecisionState]>([:])
    private let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// The cache key of a command, or nil when the command is not a plain send.
    static func key(_ command: Command, actor: String) -> String? {
        switch command {
        case .send(let roomId, _, _, _, nil, nil, let mentions) where mentions.isEmpty: return "\(roomId) \(actor)"
        case .sendDirect(let to, _, _, _): return "\(Partitioning.directRoomId(actor, to)) \(actor) \(to)"
        default: return nil
        }
    }

    func get(_ key: String) -> DecisionState? {
        entries.withLockedValue { $0[key] }
    }

    /// Keeps `state` with the room as it is after the append (folded once, by the
    /// request), without message records (sends do not need them).
    func put(_ key: String, state: DecisionState, room: RoomState?) {
        var state = state
        state.room = room
        state.room?.messages = [:]
        entries.withLockedValue { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = state
        }
    }

    func remove(_ key: String) {
        _ = entries.withLockedValue { $0.removeValue(forKey: key) }
    }
}
