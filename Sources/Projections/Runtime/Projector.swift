import EventLog
import Events

/// How urgent a projector's work is. The scheduler always runs the most urgent pending
/// work first: live projection before rebuilds and backfills.
public enum ProjectionPriority: Int, Sendable, Comparable, CustomStringConvertible {
    case rebuild = 0
    case backfill = 1
    case live = 2

    /// Orders by urgency, rebuild < backfill < live: the scheduler starts the greatest pending first.
    public static func < (a: ProjectionPriority, b: ProjectionPriority) -> Bool { a.rawValue < b.rawValue }
    /// The priority's name (`live`, `backfill`, `rebuild`), for logs.
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

/// Why a projection step failed, for a person to read. The runner waits out a store
/// outage (a transient `DriverError`) however long it lasts; this error, like any other,
/// makes the event a poison candidate that is retried and then parked.
public struct ProjectionError: Error, CustomStringConvertible, Sendable {
    /// What failed, in one line: the error text a dead letter records if the failure reaches the runner.
    public let description: String
    /// Not transient: only a transient `DriverError` is waited out, so one thrown from `apply` can get the event parked.
    public init(_ description: String) { self.description = description }
}
