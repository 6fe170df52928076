import Events
import NIOConcurrencyHelpers

/// The events this process decoded last (`EventLog.decode`), so that each is decoded from
/// JSON once however many live readers see it: the hub's tail reads an event first, then
/// each projector's consumer group reads the same entry. Decoding with JSONDecoder (about
/// 10 µs) was 10% of the server's CPU at 2,000 messages/s. With the hand-written reader
/// (1.7–2.0 µs) it still pays: a hit costs 0.2 µs, a miss about 0.6 µs more than the
/// decode, so an event read by the hub and two projectors costs about 2.9 µs instead of
/// 5.4 (`parley-bench codec`-style loop, release). An entry is found by its id and taken
/// only when its JSON is the same, byte for byte (two namespaces may share an entry id; decoding is
/// a function of the JSON alone, so equal JSON is the same event). Bounded: the oldest
/// entries make way for new ones.
public final class DecodedEvents: Sendable {
    /// The cache of the process: the hub and every projector read through it (4,096 events, a few MB).
    public static let shared = DecodedEvents(capacity: 4096)

    private struct State {
        var events: [String: (json: String, event: Event)] = [:]
        var order: [String] = []
        var next = 0
    }
    private let state = NIOLockedValueBox(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The event of `json`, stored at `entryID`: from the cache, or decoded and cached.
    public func event(entryID: String, json: String) throws -> Event {
        if let hit = state.withLockedValue({ $0.events[entryID] }), hit.json == json { return hit.event }
        let event = try EventCodec.decode(json)
        state.withLockedValue { state in
            if state.events.updateValue((json, event), forKey: entryID) != nil { return }
            if state.order.count < capacity {
                state.order.append(entryID)
            } else {
                state.events[state.order[state.next]] = nil
                state.order[state.next] = entryID
                state.next = (state.next + 1) % capacity
            }
        }
        return event
    }

    var count: Int { state.withLockedValue { $0.events.count } }
}
