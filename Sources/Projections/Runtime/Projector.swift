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
    /// store allows. `epoch` is the writer's lease epoch (`PartitionLease.take`): a write
    /// of an older epoch than the read model has recorded for the partition throws
    /// `ProjectionFenced` and changes nothing that a newer writer has written.
    func apply(_ events: [LoggedEvent], partition: Int, epoch: Int64) async throws

    /// Records in the read model that lease epoch `epoch` writes `partition` from now on,
    /// before the new holder reads anything: every later write of an older epoch is
    /// refused. Throws `ProjectionFenced` when the read model already holds a newer one.
    func fence(partition: Int, epoch: Int64) async throws

    /// The entry id up to which `partition` is applied ("0-0": nothing yet).
    func checkpoint(partition: Int) async throws -> String
}

extension Projector {
    /// Applies as the lowest epoch (0): for writers that hold no live lease (a rebuild into a read model of its own,
    /// tests, benchmarks).
    public func apply(_ events: [LoggedEvent], partition: Int) async throws {
        try await apply(events, partition: partition, epoch: 0)
    }
}

/// A write refused because a newer lease holder has written to the partition since: the
/// writer lost its lease (it was paused or cut off longer than the lease lasts) and must
/// stop projecting the partition. Never parked: the events are not at fault.
public struct ProjectionFenced: Error, CustomStringConvertible, Sendable {
    /// The partition written.
    public let partition: Int
    /// The epoch the write carried.
    public let epoch: Int64
    /// The newer epoch the read model holds.
    public let seen: Int64
    /// Names both epochs.
    public var description: String { "partition \(partition): a write of lease epoch \(epoch) after one of epoch \(seen)" }
    /// A refusal of `epoch`'s write to `partition`, which holds `seen`.
    public init(partition: Int, epoch: Int64, seen: Int64) {
        self.partition = partition
        self.epoch = epoch
        self.seen = seen
    }
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

/// A projector that adds something around another's `apply` (timing it, pausing it) and is the other in every other
/// respect: conformers give `inner` and `apply`, the rest forwards.
public protocol WrappingProjector: Projector {
    /// The projector wrapped.
    var inner: any Projector { get }
}

extension WrappingProjector {
    /// The wrapped projector's name.
    public var name: String { inner.name }
    /// The wrapped projector's event types.
    public var eventTypes: Set<EventType> { inner.eventTypes }
    /// The wrapped projector's priority.
    public var priority: ProjectionPriority { inner.priority }
    /// Prepares the wrapped projector's read model.
    public func prepare() async throws { try await inner.prepare() }
    /// The wrapped projector's checkpoint.
    public func checkpoint(partition: Int) async throws -> String { try await inner.checkpoint(partition: partition) }
    /// Fences the wrapped projector's read model.
    public func fence(partition: Int, epoch: Int64) async throws { try await inner.fence(partition: partition, epoch: epoch) }
}
