import Drivers
import EventLog
import Events
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The WebSocket hub of one server instance: tails the log once (XREAD BLOCK over every
/// partition) and fans each event out to the connected users it reaches. What it knows
/// (connections, memberships, held events) is a `HubState` under one lock; who an event
/// reaches is `Audience`'s rule; where a new connection starts is `ConnectionStart`. This
/// type only does the I/O: it reads the log, writes frames and wakes connections.
final class Hub: Service, Sendable {
    struct Session {
        let connection: HubConnection
        let hello: String
        let replay: [String]
        /// The user's membership at the connection's start position.
        let viewer: Viewer
        let since: LogPosition?
    }

    private struct Locked {
        var state: HubState
        var connections: [HubState.ConnectionID: HubConnection] = [:]
        /// Connections waiting for the hub to read the log's head.
        var waiting: [CheckedContinuation<Bool, Never>] = []
        /// The hub stopped (or never started): nothing more is let in.
        var stopped = false
    }

    let log: EventLog
    let logger: Logger
    let queueCapacity: Int
    let maxReplay: Int
    /// Replays for reconnecting clients that run at once (each reads the log from its `since`); the others wait.
    let replays: AsyncSemaphore
    /// Replays per user: a client reconnecting in a loop with an old `since` is answered `recovered: false` past it,
    /// and nothing is read for it, so one account cannot keep the replays busy for everyone else.
    let replayBudget: RateLimiter
    private let locked: NIOLockedValueBox<Locked>
    /// Made once (the metrics system is bootstrapped before the hub exists): making a
    /// counter looks it up in the registry, which cost more than the fan-out itself.
    private let fannedOut = Counter(label: "parley.ws.events_fanned_out")
    private let unreadable = Counter(label: "parley.ws.unreadable_entries")
    private let replaysRefused = Counter(label: "parley.ws.replays_refused")

    /// Told when a user's first connection here opens (true) and their last one closes (false): presence. Called under
    /// the hub's lock, so it must only queue.
    let onPresence: @Sendable (_ userId: String, _ online: Bool) -> Void

    init(
        log: EventLog, logger: Logger, queueCapacity: Int = 1024, maxConnectionsPerUser: Int = 32, maxReplay: Int = 10_000,
        replayConcurrency: Int = 4, replayBudget: RateLimiter = RateLimiter(perSecond: 0.5, burst: 10),
        onPresence: @escaping @Sendable (String, Bool) -> Void = { _, _ in }
    ) {
        self.onPresence = onPresence
        self.replays = AsyncSemaphore(permits: replayConcurrency)
        self.replayBudget = replayBudget
        self.log = log
        self.logger = logger
        self.queueCapacity = queueCapacity
        self.maxReplay = maxReplay
        self.locked = NIOLockedValueBox(
            Locked(state: HubState(maxConnectionsPerUser: maxConnectionsPerUser, maxHeld: max(50_000, maxReplay * 5))))
    }

    /// A user already has `maxConnectionsPerUser` WebSockets open here.
    struct TooManyConnections: Error {
        let limit: Int
    }

    var connectionCount: Int { locked.withLockedValue { $0.state.connectionCount } }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            guard let head = await self.readHead() else { return }
            // One loop per group of partitions the log can wait on at once: one on a single Redis, one per partition on
            // a cluster. Each owns its partitions' part of the hub's position.
            await withTaskGroup(of: Void.self) { group in
                for partitions in self.log.tailGroups {
                    group.addTask { await self.tail(partitions, from: head) }
                }
            }
        }
        let (connections, waiting) = locked.withLockedValue { locked in
            locked.stopped = true
            defer { locked.waiting = [] }
            return (Array(locked.connections.values), locked.waiting)
        }
        for waiter in waiting { waiter.resume(returning: false) }
        for connection in connections { connection.end(.shutdown) }
    }

    /// Reads `partitions` of the log from `head` on and fans their events out, until cancelled.
    private func tail(_ partitions: [Int], from head: LogPosition) async {
        var position = head
        while !Task.isCancelled {
            do {
                let page = try await log.tail(after: position, partitions: partitions, count: 1000, blockMs: 1000)
                for logged in page.events {
                    position.advance(past: logged)
                    process(logged)
                }
                for bad in page.unreadable {
                    unreadable.increment()
                    logger.error(
                        "hub passes over an unreadable log entry",
                        metadata: ["partition": "\(bad.partition)", "entry": "\(bad.entryID)", "error": "\(bad.reason)"])
                }
                if position != page.reached {
                    position = page.reached
                    locked.withLockedValue { $0.state.reached(position, in: partitions) }
                }
            } catch is CancellationError {
                break
            } catch {
                logger.warning("hub cannot read the log", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Reads the log's head (retrying while Redis is away) and lets waiting connections in.
    private func readHead() async -> LogPosition? {
        while !Task.isCancelled {
            do {
                let head = try await log.head()
                let waiting = locked.withLockedValue { locked in
                    locked.state.started(at: head)
                    defer { locked.waiting = [] }
                    return locked.waiting
                }
                for waiter in waiting { waiter.resume(returning: true) }
                return head
            } catch {
                logger.warning("hub cannot read the log's head", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        return nil
    }

    /// Returns once the hub has read the log's head: true, or false when it stopped first.
    private func ready() async -> Bool {
        await withCheckedContinuation { (waiter: CheckedContinuation<Bool, Never>) in
            let now = locked.withLockedValue { locked -> Bool? in
                if locked.stopped { return false }
                if locked.state.position != nil { return true }
                locked.waiting.append(waiter)
                return nil
            }
            if let now { waiter.resume(returning: now) }
        }
    }

    // MARK: - Fan-out

    private func process(_ logged: LoggedEvent) {
        // The frame is handed to the connections' event loops under the lock: with one tail loop per partition (a
        // cluster), an event of another partition with a later position must never overtake it at a connection.
        let (overflowed, delivered) = locked.withLockedValue { locked -> ([HubConnection], Int) in
            let fanout = locked.state.tailed(logged)
            let targets = fanout.deliver.compactMap { locked.connections[$0] }
            if !targets.isEmpty { HubConnection.send(Frame.event(logged, position: fanout.position), to: targets) }
            return (fanout.overflowed.compactMap { locked.connections[$0] }, targets.count)
        }
        for connection in overflowed { connection.end(.overflow) }
        if delivered > 0 { fannedOut.increment(by: delivered) }
    }

    // MARK: - Connections

    /// Sets up a connection of `userId`: its hello and the events it missed since `since`
    /// (replayed from the log). Live events that arrive meanwhile are held for it until
    /// `activate`, which the session calls once hello and replay are written: no gap and
    /// no duplicate at the seam.
    func connect(userId: String, channel: any Channel, since: LogPosition?, sinceGiven: Bool) async throws -> Session {
        guard await ready() else { throw DriverError(.redis, .unavailable, "the hub is not reading the log (shutting down)") }
        let (connection, start) = try locked.withLockedValue { locked -> (HubConnection, LogPosition) in
            switch locked.state.open(userId: userId) {
            case .tooMany(let limit): throw TooManyConnections(limit: limit)
            case .notStarted: preconditionFailure("the hub is ready")
            case .opened(let id, let start):
                let connection = HubConnection(id: id, userId: userId, channel: channel, capacity: queueCapacity)
                locked.connections[id] = connection
                // Told under the lock (the hook only queues): opens and closes reach presence in the order they happened.
                if locked.state.connectionCount(of: userId) == 1 { onPresence(userId, true) }
                return (connection, start)
            }
        }
        Gauge(label: "parley.ws.connections").record(connectionCount)
        do {
            var since = since
            if since != nil, replayBudget.take(userId) != nil {
                since = nil  // over the user's budget: a fresh start, `recovered: false`
                replaysRefused.increment()
            }
            // A reconnection storm (an instance died, its clients all come back with `since`) replays a few at a time.
            if since != nil { try await replays.acquire(timeout: .seconds(15), store: .redis) }
            defer { if since != nil { replays.release() } }
            let begin = try await ConnectionStart(log: log, userId: userId, maxReplay: maxReplay).run(start: start, since: since)
            let recovered = sinceGiven ? since != nil && begin.recovered : true
            return Session(
                connection: connection, hello: Frame.hello(userId: userId, position: start, recovered: recovered), replay: begin.frames,
                viewer: begin.viewer, since: since)
        } catch {
            disconnect(connection)
            throw error
        }
    }

    /// Makes a connection live: sends it the events held since it was set up, then every
    /// live event it may see.
    func activate(_ session: Session) {
        let connection = session.connection
        // The held frames are handed to the connection's event loop under the lock: a live
        // event tailed after this cannot overtake them (the loop runs its jobs in order).
        let overflowed = locked.withLockedValue { locked -> Bool in
            switch locked.state.activate(connection.id, viewer: session.viewer, since: session.since) {
            case .deliver(let held):
                for delivery in held { connection.send(Frame.event(delivery.event, position: delivery.position)) }
                return false
            case .overflowed: return true
            case .gone: return false
            }
        }
        if overflowed { connection.end(.overflow) }
    }

    func disconnect(_ connection: HubConnection) {
        let footprint = locked.withLockedValue { locked in
            let closed = locked.state.close(connection.id)
            locked.connections[connection.id] = nil
            if closed && locked.state.connectionCount(of: connection.userId) == 0 { onPresence(connection.userId, false) }
            return locked.state.footprint
        }
        connection.end(.shutdown)
        Gauge(label: "parley.ws.connections").record(connectionCount)
        Gauge(label: "parley.ws.hub_entries").record(footprint)
    }

    /// Whether `userId` is, as far as this hub knows, a joined member of `roomId`.
    func isMember(_ userId: String, of roomId: String) -> Bool {
        locked.withLockedValue { $0.state.isMember(userId, of: roomId) }
    }

    /// The users with a connection open here.
    var users: [String] { locked.withLockedValue { $0.state.users } }

    /// The rooms `userId` is a joined member of, if they have a live connection here.
    func rooms(of userId: String) -> Set<String>? { locked.withLockedValue { $0.state.rooms(of: userId) } }

    /// A presence change (from any instance) to the connections here of users who share one of `rooms` with the user.
    func presence(_ change: PresenceStore.Change, rooms: Set<String>) {
        let targets = locked.withLockedValue { locked in
            locked.state.presenceTargets(rooms: rooms, of: change.userId).compactMap { locked.connections[$0] }
        }
        HubConnection.send(Frame.presence(userId: change.userId, online: change.online, lastSeen: change.lastSeen), to: targets)
    }

    /// A typing signal (from any instance, through pub/sub) to the room's other members here.
    func typing(roomId: String, userId: String) {
        let targets = locked.withLockedValue { locked in
            locked.state.typingTargets(roomId: roomId, from: userId).compactMap { locked.connections[$0] }
        }
        HubConnection.send(Frame.typing(roomId: roomId, userId: userId), to: targets)
    }
}
