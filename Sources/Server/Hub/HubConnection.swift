import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// One connected WebSocket. Frames are written straight onto its NIO channel, on the
/// channel's event loop, so a delivery costs no task switch: the hub hands each event to
/// each event loop once, and the loop writes it to its recipients. The frames a connection
/// has been handed and the kernel has not yet taken are bounded (`capacity`): a client that
/// cannot keep up overflows it and is closed (4001); it never slows the hub or other clients.
final class HubConnection: Sendable {
    /// Why the server ends a connection on its own.
    enum Ending: Sendable { case overflow, idle, shutdown }

    let id: UInt64
    let userId: String
    let channel: any Channel
    let capacity: Int
    private struct State {
        /// Frames handed to the channel and not yet written to the socket.
        var inFlight = 0
        /// Set once; after it nothing more is written.
        var ending: Ending?
        var waiter: CheckedContinuation<Ending?, Never>?
    }
    private let state = NIOLockedValueBox(State())
    /// See `frameEncoder()`; touched on the channel's event loop only.
    private let encoder: NIOLoopBoundBox<ChannelHandlerContext?>

    init(id: UInt64, userId: String, channel: any Channel, capacity: Int) {
        self.id = id
        self.userId = userId
        self.channel = channel
        self.capacity = capacity
        self.encoder = .makeEmptyBox(valueType: ChannelHandlerContext.self, eventLoop: channel.eventLoop)
    }

    /// Sends a text frame, from any thread; frames sent from one task go out in order.
    func send(_ text: String) {
        let frame = Self.textFrame(text)
        let loop = channel.eventLoop
        if loop.inEventLoop { write(frame) } else { loop.execute { self.write(frame) } }
    }

    /// Sends `text` to every connection in `targets`: the frame is encoded once, and handed
    /// to each event loop once, however many of its connections receive it.
    static func send(_ text: String, to targets: [HubConnection]) {
        guard !targets.isEmpty else { return }
        let frame = textFrame(text)
        var byLoop: [ObjectIdentifier: (loop: any EventLoop, connections: [HubConnection])] = [:]
        for connection in targets {
            let loop = connection.channel.eventLoop
            byLoop[ObjectIdentifier(loop), default: (loop, [])].connections.append(connection)
        }
        for (_, group) in byLoop {
            let connections = group.connections
            group.loop.execute { for connection in connections { connection.write(frame) } }
        }
    }

    /// A server's text frame (final, unmasked) around `text`, header and payload in one
    /// buffer. A server's frames are the same bytes for every recipient, so one buffer is
    /// shared by all of them, where NIO's encoder would add a header buffer per recipient.
    static func textFrame(_ text: String) -> ByteBuffer {
        let count = text.utf8.count
        var frame = ByteBufferAllocator().buffer(capacity: count + 10)
        frame.writeInteger(UInt8(0x81))  // FIN, text
        if count <= 125 {
            frame.writeInteger(UInt8(count))
        } else if count <= 0xFFFF {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(count))
        } else {
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(count))
        }
        frame.writeString(text)
        return frame
    }

    /// Writes one encoded frame; on the channel's event loop only. Past `capacity` frames
    /// in flight the connection ends as too slow instead.
    private func write(_ frame: ByteBuffer) {
        enum Outcome { case write, skip, overflow }
        let outcome = state.withLockedValue { state -> Outcome in
            guard state.ending == nil else { return .skip }
            guard state.inFlight < capacity else { return .overflow }
            state.inFlight += 1
            return .write
        }
        switch outcome {
        case .skip: return
        case .overflow: end(.overflow)
        case .write:
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { _ in self.state.withLockedValue { $0.inFlight -= 1 } }
            guard let encoder = frameEncoder() else {
                // No encoder (the channel is closing): the write fails and frees its place.
                promise.fail(ChannelError.ioOnClosedChannel)
                return
            }
            // Below NIO's frame encoder: the bytes are a frame already.
            encoder.writeAndFlush(NIOAny(frame), promise: promise)
        }
    }

    /// The context of the channel's `WebSocketFrameEncoder`, found on the first write:
    /// writing through it sends bytes on toward the socket, past the encoder.
    private func frameEncoder() -> ChannelHandlerContext? {
        if let context = encoder.value { return context }
        let context = try? channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        encoder.value = context
        return context
    }

    /// Ends the connection from the server's side (the first reason given wins): nothing
    /// more is written, and `waitForEnding` returns.
    func end(_ ending: Ending) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Ending?, Never>? in
            guard state.ending == nil else { return nil }
            state.ending = ending
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: ending)
    }

    /// Returns why the server ends this connection once it does, or nil when the calling
    /// task is cancelled first. No polling: idle connections cost no wake-ups.
    func waitForEnding() async -> Ending? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Ending?, Never>) in
                let now = state.withLockedValue { state -> Ending?? in
                    if let ending = state.ending { return .some(ending) }
                    // Cancelled already (the flag is set before `onCancel` runs, which takes
                    // this lock): do not wait for a resume that will not come.
                    if Task.isCancelled { return .some(nil) }
                    state.waiter = waiter
                    return nil
                }
                if let now { waiter.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Ending?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
