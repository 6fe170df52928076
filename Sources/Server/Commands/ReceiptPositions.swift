import Foundation
import NIOConcurrencyHelpers

/// Where each reader is in each room, as this instance last learnt it (from the read model
/// or from a receipt it appended), for `maxAge`: a client repeating its receipt in a loop
/// then costs a dictionary lookup, not a PostgreSQL read per frame. A position older than
/// `maxAge` is read again (another instance may have moved it; a member who left and came
/// back starts over), so an entry only ever skips a receipt the read model skipped too a
/// moment ago.
final class ReceiptPositions: Sendable {
    private struct Known {
        var seq: Int64
        var at: ContinuousClock.Instant
    }

    let maxAge: Duration
    /// The most readers × rooms kept; past it expired entries go first, then all.
    let maxEntries: Int
    private let known = NIOLockedValueBox<[String: Known]>([:])

    init(maxAge: Duration = .seconds(30), maxEntries: Int = 100_000) {
        self.maxAge = maxAge
        self.maxEntries = maxEntries
    }

    private static func key(_ userId: String, _ roomId: String) -> String { userId + " " + roomId }

    /// The position learnt for `userId` in `roomId` within `maxAge`; nil when none.
    func position(_ userId: String, _ roomId: String, now: ContinuousClock.Instant = .now) -> Int64? {
        known.withLockedValue { known in
            guard let entry = known[Self.key(userId, roomId)], now - entry.at < maxAge else { return nil }
            return entry.seq
        }
    }

    /// Records that `userId` is at `seq` in `roomId` (kept if it is further than what is known).
    func learn(_ userId: String, _ roomId: String, seq: Int64, now: ContinuousClock.Instant = .now) {
        known.withLockedValue { known in
            let key = Self.key(userId, roomId)
            if known[key] == nil, known.count >= maxEntries {
                known = known.filter { now - $0.value.at < maxAge }
                if known.count >= maxEntries { known.removeAll(keepingCapacity: true) }
            }
            let previous = known[key].flatMap { now - $0.at < maxAge ? $0.seq : nil } ?? Int64.min
            known[key] = Known(seq: max(previous, seq), at: now)
        }
    }

    var count: Int { known.withLockedValue { $0.count } }
}
