import Foundation

/// Redis pub/sub on a thread of its own: subscribes to channels on a dedicated connection,
/// blocks reading messages and hands each to `onMessage`; reconnects (and resubscribes)
/// when the connection breaks. For ephemeral signals such as typing indicators.
public final class RedisSubscriber: Sendable {
    private let client: RedisClient
    private let channels: [String]
    private let onMessage: @Sendable (_ channel: String, _ payload: String) -> Void

    public init(client: RedisClient, channels: [String], onMessage: @escaping @Sendable (String, String) -> Void) {
        self.client = client
        self.channels = channels
        self.onMessage = onMessage
        let thread = Thread { [self] in self.loop() }
        thread.name = "parley-redis-subscriber"
        thread.start()
    }

    private func loop() {
        let configuration = client.configuration
        while true {
            do {
                let connection = try RedisConnection(
                    endpoint: client.endpoint, connectTimeoutMs: configuration.connectTimeout.milliseconds,
                    commandTimeoutMs: configuration.commandTimeout.milliseconds)
                defer { connection.close() }
                _ = try connection.command(["SUBSCRIBE"] + channels)
                for _ in 1..<channels.count { _ = try connection.readReply(timeoutMs: 0) }
                while true {
                    let message = try connection.readReply(timeoutMs: 0)
                    guard let parts = message.array, parts.count == 3, parts[0].string == "message",
                        let channel = parts[1].string, let payload = parts[2].string
                    else { continue }
                    onMessage(channel, payload)
                }
            } catch {
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }
}
