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
    private let lostTails = NIOLockedValueBox<[String: LostTail]>([:])

    /// A read model that has applied further than the log now goes: the log lost its newest entries.
    public struct LostTail: Sendable, Equatable, CustomStringConvertible {
        /// The projector whose read model is ahead.
        public var projector: String
        /// The partition.
        public var partition: Int
        /// Where the read model is.
        public var applied: String
        /// The newest entry the log has ever had now.
        public var logEnds: String
        /// For `/readyz` and the log line.
        public var description: String {
            "the \(projector) read model has applied partition \(partition) up to \(applied), past the end of the log (\(logEnds))"
        }
    }

    /// One per process, shared by its `ProjectorRunner`s, which write it, and `/readyz` and `/metrics`, which read it.
    public init() {}

    func set(_ projector: String, partition: Int, _ lag: Lag) {
        values.withLockedValue { $0[projector, default: [:]][partition] = lag }
    }

    func setLostTail(_ projector: String, partition: Int, _ lost: LostTail?) {
        lostTails.withLockedValue { $0["\(projector):\(partition)"] = lost }
    }

    /// Partitions whose log lost entries a read model had applied: their runners project nothing until it is resolved.
    public var lostTail: [LostTail] { lostTails.withLockedValue { Array($0.values) }.sorted { $0.description < $1.description } }

    /// Every projector's lag by partition.
    public var snapshot: [String: [Int: Lag]] { values.withLockedValue { $0 } }

    /// The largest lag of any projector in any partition.
    public var worst: Lag {
        let all = snapshot.values.flatMap(\.values)
        return Lag(events: all.map(\.events).max() ?? 0, milliseconds: all.map(\.milliseconds).max() ?? 0)
    }
}
