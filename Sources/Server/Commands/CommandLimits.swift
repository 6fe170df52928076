import Foundation
import Metrics

/// How often one user may give each kind of appending command, HTTP and WebSocket together: a token bucket per user and
/// class. Every command that appends to the log is in a class, so no single user can grow the log (or the fan-out of
/// others' connections) faster than these rates, whatever they send.
struct CommandLimits: Sendable {
    /// The kinds of command, each with a bucket of its own.
    enum Class: String, CaseIterable, Sendable {
        /// Messages sent.
        case sends
        /// Edits and deletions of messages.
        case edits
        /// Read receipts that move (one that does not move appends nothing and costs nothing).
        case receipts
        /// Group rooms created.
        case rooms
        /// Invites, joins, declines, leaves, removals, role changes, renames, pins.
        case membership
        /// Reactions added or removed (one that changes nothing appends nothing, but still takes a token).
        case reactions
        /// Typing signals, per user and room (never in the log, but fanned out to every member).
        case typing

        /// The default rate (per minute) and burst.
        var defaults: (perMinute: Int, burst: Int) {
            switch self {
            case .sends: return (1200, 40)
            case .edits: return (300, 30)
            case .receipts: return (600, 60)
            case .rooms: return (30, 10)
            case .membership: return (120, 30)
            case .reactions: return (600, 60)
            case .typing: return (30, 5)
            }
        }
    }

    private let limiters: [Class: RateLimiter]

    /// `rates` gives each class's tokens per minute and burst; a class it leaves out gets its default.
    init(_ rates: [Class: (perMinute: Int, burst: Int)] = [:]) {
        var limiters: [Class: RateLimiter] = [:]
        for kind in Class.allCases {
            let rate = rates[kind] ?? kind.defaults
            limiters[kind] = RateLimiter(perSecond: Double(rate.perMinute) / 60, burst: rate.burst)
        }
        self.limiters = limiters
    }

    /// Takes a token of `actor`'s bucket for `kind` (within `scope`, a room for typing); throws 429 `rate_limited` with
    /// `retryAfterMs` when it is empty.
    func admit(_ kind: Class, _ actor: String, scope: String = "") throws {
        guard let limiter = limiters[kind] else { return }
        do {
            try limiter.check(scope.isEmpty ? actor : actor + " " + scope)
        } catch {
            Counter(label: "parley.rate_limited", dimensions: [("class", kind.rawValue)]).increment()
            throw error
        }
    }
}
