import NIOConcurrencyHelpers

/// A bounded pool of workers for projection work, run most urgent first: when a worker is
/// free, the pending job with the highest priority (the oldest among equals) gets it. Live
/// projection therefore never waits behind a rebuild for more than the one rebuild batch
/// already running on each worker. Jobs name a group (their projector): one group holds
/// at most `perGroup` workers (`workers - 1` unless told), so a projector stuck on a slow
/// store (MongoDB timing out, say) cannot starve the projectors of the other stores.
public final class PriorityScheduler: Sendable {
    private struct Waiter {
        let priority: ProjectionPriority
        let order: UInt64
        let label: String
        let group: String
        /// Jobs started so far, by priority, when this one began to wait.
        let startedBefore: [ProjectionPriority: Int]
        let continuation: CheckedContinuation<Void, Never>
    }

    /// One started job: its priority and label, and how many less urgent jobs started
    /// while it waited (always 0 unless the scheduler is wrong).
    public struct TraceEntry: Sendable {
        /// The priority the job ran at.
        public var priority: ProjectionPriority
        /// The caller's label: `<projector>:<partition>` for projection work, empty when none was given.
        public var label: String
        /// False when the job started at once on a free worker; true when it queued first.
        public var waited: Bool
        /// Less urgent jobs that started while this one waited: always 0 unless the scheduler is wrong (what tests check).
        public var overtakenByLessUrgent: Int
    }

    private struct State {
        var running = 0
        var runningByGroup: [String: Int] = [:]
        var waiters: [Waiter] = []
        var order: UInt64 = 0
        var started: [ProjectionPriority: Int] = [:]
        var trace: [TraceEntry] = []
        var tracing = false
    }

    /// Jobs that run at once across all groups (at least 1): the server uses 2, the replayer's tools 1.
    public let workers: Int
    /// Workers one group may hold at once.
    public let perGroup: Int
    private let state = NIOLockedValueBox(State())

    /// `workers` below 1 counts as 1; one group may hold `perGroup` of them (`workers - 1` when nil; at least 1).
    public init(workers: Int = 2, perGroup: Int? = nil) {
        self.workers = max(1, workers)
        self.perGroup = max(1, min(self.workers, perGroup ?? self.workers - 1))
    }

    /// Runs `body` on a worker once every more urgent pending job has started.
    public func run<T: Sendable>(
        _ priority: ProjectionPriority, label: String = "", group: String = "", _ body: @Sendable () async throws -> T
    ) async rethrows -> T {
        await acquire(priority, label: label, group: group)
        defer { release(group: group) }
        return try await body()
    }

    /// Records the start of every job (priority and label) while `tracing` is on: tests
    /// check the order of work with it.
    public func startTracing() {
        state.withLockedValue {
            $0.tracing = true
            $0.trace = []
        }
    }

    /// The jobs started since `startTracing()`, in start order; empty unless tracing is on.
    public var trace: [TraceEntry] { state.withLockedValue { $0.trace } }

    /// Jobs waiting for a worker, by priority.
    public var pending: [ProjectionPriority: Int] {
        state.withLockedValue { Dictionary(grouping: $0.waiters, by: \.priority).mapValues(\.count) }
    }

    private func acquire(_ priority: ProjectionPriority, label: String, group: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { state -> Bool in
                if state.running < workers && state.waiters.isEmpty && state.runningByGroup[group, default: 0] < perGroup {
                    state.running += 1
                    state.runningByGroup[group, default: 0] += 1
                    state.started[priority, default: 0] += 1
                    if state.tracing {
                        state.trace.append(TraceEntry(priority: priority, label: label, waited: false, overtakenByLessUrgent: 0))
                    }
                    return true
                }
                state.order += 1
                state.waiters.append(
                    Waiter(
                        priority: priority, order: state.order, label: label, group: group, startedBefore: state.started,
                        continuation: continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release(group: String) {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.running -= 1
            state.runningByGroup[group, default: 1] -= 1
            // The most urgent waiter whose group has room (the oldest among equals).
            let eligible = state.waiters.indices.filter { state.runningByGroup[state.waiters[$0].group, default: 0] < perGroup }
            guard
                let index = eligible.max(by: { a, b in
                    let x = state.waiters[a]
                    let y = state.waiters[b]
                    return x.priority != y.priority ? x.priority < y.priority : x.order > y.order
                })
            else { return nil }
            let waiter = state.waiters.remove(at: index)
            state.running += 1
            state.runningByGroup[waiter.group, default: 0] += 1
            state.started[waiter.priority, default: 0] += 1
            if state.tracing {
                let overtaken = state.started.filter { $0.key < waiter.priority }
                    .map { $0.value - (waiter.startedBefore[$0.key] ?? 0) }.reduce(0, +)
                state.trace.append(
                    TraceEntry(priority: waiter.priority, label: waiter.label, waited: true, overtakenByLessUrgent: overtaken))
            }
            return waiter.continuation
        }
        next?.resume()
    }
}
