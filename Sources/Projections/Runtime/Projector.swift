import EventLog
import Events

/// How urgent a projector's work is. The scheduler always runs the most urgent pending
/// work first: live projection before rebuilds and backfills.
public enum ProjectionPriority: Int, Sendable, Comparable, CustomStringConvertible {
    case rebuild = 0
    case backfill = 1
    case live = 2

    public static func < (a: ProjectionPriority, b: ProjectionPriority) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .rebuild: return "rebuild"
        case .backfill: return "backfill"
        case .live: return "live"
        }
    }
}

/// A read model fed from the log. `apply` must be idempotent: the runtime delivers at
/// least once, and a batch applied twice leaves the read model as once.
public protocol Projector: Sendable {
    /// Stable name: the consumer group, the checkpoint key, the metrics label.
    var name: String { get }
    /// The event types it reads; other events only move its checkpoint.
    var eventTypes: Set<EventType> { get }
    /// Its work's priority when it runs live.
    var priority: ProjectionPriority { get }

    /// Creates what the read model needs (indexes, tables of a shadow schema).
    func prepare() async throws

    /// Applies `events` of `partition` (in log order, some maybe already applied) and
    /// records the checkpoint at the last one, atomically with the read model where the
    /// store allows.
    func apply(_ events: [LoggedEvent], partition: Int) async throws

    /// The entry id up to which `partition` is applied ("0-0": nothing yet).
    func checkpoint(partition: Int) async throws -> String
}

/// Why an event could not be applied. `transient` failures (a store down) are retried
/// until they pass; any other failure makes the event a poison candidate.
public struct ProjectionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
