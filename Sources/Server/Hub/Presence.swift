import EventLog
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Online and offline, across instances (CONTRACT section 7): ephemeral, never in the log. This instance marks the
/// users it has a WebSocket of in the `PresenceStore` (renewed every `ttl / 4`), takes offline the users of instances
/// that stopped renewing (`reap`, every 5 s), and fans out every change any instance publishes to the connections here
/// of users who share a room with them.
///
/// Changes are coalesced: those that come within `flushInterval` are sent once per user (the latest), and a user in
/// many rooms reaches each connection once. What bounds it: `pending` holds at most one change per user, and is emptied
/// at every flush; the queue of opens and closes holds what the hub saw, in its order (the hub yields under its lock).
final class Presence: Service, Sendable {
    enum Local: Sendable {
        case opened(String)
        case closed(String)
        /// Renew the marks of the users connected here (read when it is handled, after every open and close before it).
        case renew
    }

    let store: PresenceStore
    let log: EventLog
    let logger: Logger
    let flushInterval: Duration
    let reapInterval: Duration
    private let hub = NIOLockedValueBox<Hub?>(nil)
    private let pending = NIOLockedValueBox<[String: PresenceStore.Change]>([:])
    private let local: AsyncStream<Local>
    private let localInput: AsyncStream<Local>.Continuation

    init(
        store: PresenceStore, log: EventLog, logger: Logger, flushInterval: Duration = .milliseconds(250),
        reapInterval: Duration = .seconds(5)
    ) {
        self.store = store
        self.log = log
        self.logger = logger
        self.flushInterval = flushInterval
        self.reapInterval = reapInterval
        (local, localInput) = AsyncStream.makeStream(of: Local.self, bufferingPolicy: .unbounded)
    }

    /// The hub whose connections presence reaches (set once both exist).
    func attach(_ hub: Hub) { self.hub.withLockedValue { $0 = hub } }

    /// The hub's hook: a user's first connection here opened, or their last one closed.
    func changed(_ userId: String, online: Bool) {
        localInput.yield(online ? .opened(userId) : .closed(userId))
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.markLocalChanges() }
                // Through the same queue as opens and closes: a renewal never re-marks a user whose close came before it.
                group.addTask { await self.every(self.store.ttl / 4) { self.localInput.yield(.renew) } }
                group.addTask { await self.every(self.reapInterval) { try await self.store.reap() } }
                group.addTask {
                    await self.store.subscribe(logger: self.logger) { change in self.pending.withLockedValue { $0[change.userId] = change }
                    }
                }
                group.addTask { await self.every(self.flushInterval) { try await self.flush() } }
                await group.next()
                group.cancelAll()
            }
        }
        localInput.finish()
    }

    /// Marks and unmarks in the order the hub saw connections open and close.
    private func markLocalChanges() async {
        for await change in local {
            do {
                switch change {
                case .opened(let userId): try await store.mark([userId])
                case .closed(let userId): try await store.unmark(userId)
                case .renew: try await store.mark(hub.withLockedValue { $0 }?.users ?? [])
                }
            } catch {
                // The next renewal marks the user again; a missed unmark expires with the mark's ttl.
                logger.warning("presence could not be recorded", metadata: ["error": "\(error)"])
            }
        }
    }

    private func every(_ interval: Duration, _ work: @escaping @Sendable () async throws -> Void) async {
        while !Task.isCancelled {
            do { try await work() } catch is CancellationError { return } catch {
                logger.warning("presence work failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Sends the changes gathered since the last flush: one frame per user changed and connection reached.
    private func flush() async throws {
        let changes = pending.withLockedValue { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return Array(pending.values)
        }
        guard let hub = hub.withLockedValue({ $0 }), !changes.isEmpty else { return }
        for change in changes {
            // A user connected here is known to the hub; another instance's user is looked up in the guard state.
            var rooms = hub.rooms(of: change.userId)
            if rooms == nil {
                do {
                    rooms = try await log.joinedRooms(of: change.userId).rooms
                } catch {
                    // Kept for the next flush, unless a newer change of the user came meanwhile.
                    pending.withLockedValue { if $0[change.userId] == nil { $0[change.userId] = change } }
                    logger.warning("presence could not find a user's rooms", metadata: ["error": "\(error)"])
                    continue
                }
            }
            hub.presence(change, rooms: rooms ?? [])
        }
    }
}
