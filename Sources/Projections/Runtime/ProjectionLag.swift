import NIOConcurrencyHelpers

/// How far each projector is behind the log, per partition: what `/readyz` and `/metrics`
/// read.
public final class ProjectionLag: Sendable {
    /// One projector's distance behind one partition of the log, as its runner last measured it.
    public struct Lag: Sendable, Equatable {
        /// Events in the log not yet applied.
        public var events: Int
        /// Milliseconds between the newest event in the log and the last one applied
        /// (0 when caught up).
        public var milliseconds: Int64
    }

    private let values = NIOLockedValueBox<[String: [Int: Lag]]>([:])

    /// One per process, shared by its `ProjectorRunner`s, which write it, and `/readyz` and `/metrics`, which read it.
    public init() {}

    func set(_ projector: String, partition: Int, _ lag: Lag) {
        values.withLockedValue { $0[projector, default: [:]][partition] = lag }
    }

    /// Every projector's lag by partition.
    public var snapshot: [String: [Int: Lag]] { values.withLockedValue { $0 } }

    /// The largest lag of any projector in any partition.
    public var worst: Lag {
        let all = snapshot.values.flatMap(\.values)
        return Lag(events: all.map(\.events).max() ?? 0, milliseconds: all.map(\.milliseconds).max() ?? 0)
    }
}
