import Drivers
import Logging
import ServiceLifecycle

/// Signals that are never logged (typing indicators), shared by every server instance
/// through Redis pub/sub on `<ns>:typing`. Publishing is one PUBLISH; receiving is this
/// service's subscriber, which runs in the server's service group and stops with it.
public struct EphemeralSignals: Service {
    let redis: RedisClient
    let channel: String
    let logger: Logger
    let onTyping: @Sendable (_ roomId: String, _ userId: String) -> Void

    init(redis: RedisClient, keys: Keys, logger: Logger, onTyping: @escaping @Sendable (String, String) -> Void) {
        self.redis = redis
        self.channel = keys.typingChannel
        self.logger = logger
        self.onTyping = onTyping
    }

    /// Tells every instance that `userId` is typing in `roomId`.
    public func typing(roomId: String, userId: String) async throws {
        try await redis.command(["PUBLISH", channel, roomId + " " + userId])
    }

    /// Receives the signals of every instance until graceful shutdown.
    public func run() async throws {
        let subscriber = RedisSubscriber(client: redis, channels: [channel])
        let onTyping = self.onTyping
        await cancelWhenGracefulShutdown {
            await subscriber.run(logger: logger) { _, payload in
                let parts = payload.split(separator: " ", maxSplits: 1).map(String.init)
                if parts.count == 2 { onTyping(parts[0], parts[1]) }
            }
        }
    }
}
