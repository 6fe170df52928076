import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket

/// What `parley-bench ws` needs of one WebSocket client of the load generator.
protocol LoadClient: Sendable {
    init(port: Int, token: String, userId: String, recorder: DeliveryRecorder?)
    func send(roomID: String, body: String)
    /// Any frame, as JSON text.
    func sendFrame(_ text: String)
    func waitUntilConnected(seconds: Double) async throws
    func close()
}

/// Waits until `connected` says whether the connection opened (true) or failed (false).
func waitForConnection(_ connected: NIOLockedValueBox<Bool?>, seconds: Double) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        switch connected.withLockedValue({ $0 }) {
        case true?: return
        case false?: throw BenchError("a WebSocket connection failed")
        case nil: try await Task.sleep(for: .milliseconds(10))
        }
    }
    throw BenchError("a WebSocket connection did not open in \(seconds) s")
}

/// A load-generator client on bare NIO channel handlers: the upgrade request written by
/// hand, NIO's frame decoder and encoder, and a handler that classifies each frame where it
/// is decoded, on the event loop, with no task, stream or `String` per frame. The load
/// generator shares the machine with the server, so every microsecond it spends on a
/// delivery is taken from the server; this client spends about half of what the
/// `WebSocketClient`-based one (`--client async`) does.
final class NIOBenchClient: LoadClient {
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)
    private let connected = NIOLockedValueBox<Bool?>(nil)

    required init(port: Int, token: String, userId: String, recorder: DeliveryRecorder?) {
        let connected = self.connected
        let request =
            "GET /v1/ws?token=\(token) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        let mine = Array("\"actorId\":\"\(userId)\"".utf8)
        let channelBox = channel
        ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        UpgradeReader(request: request, connected: connected),
                        ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)),
                        WebSocketFrameEncoder(),
                        FrameReader(mine: mine, recorder: recorder, connected: connected),
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel): channelBox.withLockedValue { $0 = channel }
                case .failure: connected.withLockedValue { if $0 == nil { $0 = false } }
                }
            }
    }

    func send(roomID: String, body: String) {
        sendFrame("{\"type\":\"send\",\"roomId\":\"\(roomID)\",\"body\":\"\(body)\"}")
    }

    func sendFrame(_ text: String) {
        guard let channel = channel.withLockedValue({ $0 }) else { return }
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text)), promise: nil)
    }

    func waitUntilConnected(seconds: Double = 30) async throws {
        try await waitForConnection(connected, seconds: seconds)
    }

    func close() { channel.withLockedValue { $0 }?.close(promise: nil) }

    /// Writes the upgrade request when connected and swallows the HTTP answer; everything
    /// after it goes on to the frame decoder.
    private final class UpgradeReader: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let request: String
        let connected: NIOLockedValueBox<Bool?>
        var header: [UInt8] = []
        var upgraded = false

        init(request: String, connected: NIOLockedValueBox<Bool?>) {
            self.request = request
            self.connected = connected
        }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            guard !upgraded else { return context.fireChannelRead(data) }
            while let byte = buffer.readInteger(as: UInt8.self) {
                header.append(byte)
                guard header.count >= 4, header.suffix(4) == [13, 10, 13, 10] else { continue }
                guard header.starts(with: Array("HTTP/1.1 101".utf8)) else {
                    connected.withLockedValue { $0 = false }
                    context.close(promise: nil)
                    return
                }
                upgraded = true
                if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
                return
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            connected.withLockedValue { if $0 == nil { $0 = false } }
            context.fireChannelInactive()
        }
    }

    /// Classifies each server frame from its bytes: `hello`, a message event of another
    /// user (its latency is recorded), an error frame, or anything else.
    private final class FrameReader: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        let mine: [UInt8]
        let recorder: DeliveryRecorder?
        let connected: NIOLockedValueBox<Bool?>

        init(mine: [UInt8], recorder: DeliveryRecorder?, connected: NIOLockedValueBox<Bool?>) {
            self.mine = mine
            self.recorder = recorder
            self.connected = connected
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .text:
                let now = DispatchTime.now().uptimeNanoseconds
                let received = frame.data.withUnsafeReadableBytes { raw in
                    raw.withMemoryRebound(to: UInt8.self) { BenchClient.read($0, mine: mine) }
                }
                switch received {
                case .hello: connected.withLockedValue { $0 = true }
                case .delivery(let phase, let scheduled): recorder?.record(phase: phase, scheduled: scheduled, at: now)
                case .ack(let phase, let scheduled): recorder?.recordAck(phase: phase, scheduled: scheduled, at: now)
                case .receipt: recorder?.recordReceipt(at: now)
                case .error: recorder?.error(String(buffer: frame.data))
                case .other: break
                }
            case .connectionClose:
                context.close(promise: nil)
            case .ping:
                // The server pings every 30 s and closes a connection that does not answer (runs of many phases last longer).
                let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
                context.writeAndFlush(NIOAny(pong), promise: nil)
            default:
                break
            }
        }
    }
}
