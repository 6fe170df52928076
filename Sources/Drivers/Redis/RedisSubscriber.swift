import Foundation
import Logging
import NIOConcurrencyHelpers

/// Redis pub/sub on a thread of its own: subscribes to channels on a dedicated connection,
/// blocks reading messages and hands each to `onMessage`; reconnects (and resubscribes)
/// when the connection breaks. For ephemeral signals such as typing indicators.
///
/// It runs while `run` does: cancelling the calling task (a service group's shutdown)
/// stops the thread and closes the connection. The blocking read is woken by a message on
/// a channel of this subscriber's own.
public final class RedisSubscriber: Sendable {
    private let client: RedisClient
    private let channels: [String]
    private let wakeChannel: String
    private let stopped = NIOLockedValueBox(false)

    /// Subscribes to `channels` (exact names, not patterns) once `run` is called; nothing connects before.
    public init(client: RedisClient, channels: [String]) {
        self.client = client
        self.channels = channels
        self.wakeChannel = (channels.first ?? "parley") + ":wake:" + UUID().uuidString
    }

    /// Receives messages until the calling task is cancelled; connection failures are
    /// logged and retried every second. Returns as soon as it is cancelled: the thread
    /// ends once the wake-up message (or the connection's end) reaches its blocked read,
    /// and a Redis that cannot be reached for that never holds up a shutdown.
    public func run(logger: Logger, onMessage: @escaping @Sendable (_ channel: String, _ payload: String) -> Void) async {
        let waiting = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        let resume = { @Sendable in
            waiting.withLockedValue { continuation in
                continuation?.resume()
                continuation = nil
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                waiting.withLockedValue { $0 = finished }
                guard !isStopped else { return resume() }
                let thread = Thread { [self] in
                    self.loop(logger: logger, onMessage: onMessage)
                    resume()
                }
                thread.name = "parley-redis-subscriber"
                thread.start()
            }
        } onCancel: {
            stopped.withLockedValue { $0 = true }
            resume()
            // Wakes the blocked read; a subscriber that is between connections sees the flag itself.
            let endpoints = self.client.unkeyedEndpoints()
            let wake = self.wakeChannel
            Thread.detachNewThread {
                // Published on any node of a cluster, a message reaches the subscribers of every node.
                for endpoint in endpoints {
                    let sent = try? RedisConnection(endpoint: endpoint, connectTimeoutMs: 1000, commandTimeoutMs: 1000)
                        .command(["PUBLISH", wake, "stop"])
                    if sent != nil { break }
                }
            }
        }
    }

    private var isStopped: Bool { stopped.withLockedValue { $0 } }

    private func loop(logger: Logger, onMessage: @Sendable (String, String) -> Void) {
        let configuration = client.configuration
        let subscribed = channels + [wakeChannel]
        var attempt = 0
        while !isStopped {
            // With a cluster, each attempt after a failure tries the next node: the one subscribed to may have died.
            let endpoints = client.unkeyedEndpoints()
            let endpoint = endpoints[attempt % endpoints.count]
            attempt += 1
            do {
                let connection = try RedisConnection(
                    endpoint: endpoint, connectTimeoutMs: configuration.connectTimeout.milliseconds,
                    commandTimeoutMs: configuration.commandTimeout.milliseconds)
                defer { connection.close() }
                _ = try connection.command(["SUBSCRIBE"] + subscribed)
                for _ in 1..<subscribed.count { _ = try connection.readReply(timeoutMs: 0) }
                while !isStopped {
                    let message = try connection.readReply(timeoutMs: 0)
                    guard let parts = message.array, parts.count == 3, parts[0].string == "message",
                        let channel = parts[1].string, let payload = parts[2].string, channel != wakeChannel
                    else { continue }
                    onMessage(channel, payload)
                }
            } catch {
                guard !isStopped else { break }
                logger.warning("pub/sub subscriber reconnects", metadata: ["channels": "\(channels)", "error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }
}
