import Foundation
import TestSupport
import Testing

/// A client that stops reading must not hold the server or slow anyone else down.
@Suite("A WebSocket client that stops reading")
struct SlowClientTests {
    @Test func isDroppedWhileTheOthersKeepReceivingEveryMessage() async throws {
        let s = try await ServerProcess(environment: ["PARLEY_WS_QUEUE_FRAMES": "8"])
        let ann = try await s.register("slann")
        let bob = try await s.register("slbob")
        let sloth = try await s.register("slsloth")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "Busy", "invite": [bob.id, sloth.id]])
        let roomId = try #require(created["room", "id"] as? String)
        for user in [bob, sloth] { #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: user.token).status == 200) }

        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await bobWS.next(type: "hello")
        let stalled = try RawWebSocket(port: s.port, path: "/v1/ws?token=\(sloth.token)", receiveBuffer: 4096)
        try await stalled.readUpgrade()
        // From here on the stalled client reads nothing.
        _ = try await eventually { try await connections(s) == 2 ? true : { throw URLError(.timedOut) }() }

        // 1,200 messages of 3.5 KB: far more than the stalled socket's buffers and the
        // server's 8-frame queue for it.
        let body = String(repeating: "x", count: 3500)
        let count = 1200
        let sending = Task {
            for n in 1...count {
                let sent = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "\(n) \(body)"])
                #expect(sent.status == 201)
            }
        }
        var seqs: [Int] = []
        while seqs.count < count {
            let frame = try await bobWS.next(type: "event", seconds: 30)
            if frame["event", "type"] as? String == "message.sent", let seq = frame["event", "seq"] as? Int { seqs.append(seq) }
        }
        try await sending.value
        #expect(seqs == Array(1...count))

        // The server let go of the stalled connection: it no longer counts it, and the
        // socket ends (after whatever the kernel had buffered for it).
        let left = try await eventually(seconds: 15) { try await connections(s) == 1 ? 1 : { throw URLError(.timedOut) }() }
        #expect(left == 1)
        let ending = try await stalled.readToEnd(seconds: 15)
        #expect(ending.closedByServer)
        #expect(ending.bytes > 0)
        // 4001: its queue overflowed. On a machine slow enough that the 1,200 sends take over a minute, the WebSocket
        // library's own ping (every 30 s, no pong from a client that reads nothing) closes it first with 1001 (seen in CI).
        if let code = ending.closeCode { #expect(code == 4001 || code == 1001) }
        bobWS.close()
        try await s.cleanUp()
    }

    /// `parley_ws_connections` from `/metrics`.
    func connections(_ s: ServerProcess) async throws -> Int {
        let text = try await s.request("GET", "/metrics").text
        let line = text.split(separator: "\n").first { $0.hasPrefix("parley_ws_connections") }
        return line.flatMap { Int(Double($0.split(separator: " ").last ?? "") ?? -1) } ?? -1
    }
}

/// A WebSocket client on a raw socket, so that a test decides when (and whether) it reads.
/// Non-blocking: waiting is done with `Task.sleep`, never by blocking a thread.
final class RawWebSocket: @unchecked Sendable {
    let fd: Int32

    init(port: Int, path: String, receiveBuffer: Int32) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var size = receiveBuffer
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw URLError(.cannotConnectToHost) }
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    private var pending: [UInt8] = []

    /// Reads the HTTP 101 answer and nothing after it.
    func readUpgrade() async throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n == 1 {
                pending.append(byte)
                if pending.suffix(4) == [13, 10, 13, 10] {
                    guard String(decoding: pending, as: UTF8.self).hasPrefix("HTTP/1.1 101") else { throw URLError(.badServerResponse) }
                    pending = []
                    return
                }
            } else if n == 0 {
                throw URLError(.networkConnectionLost)
            } else {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        throw URLError(.timedOut)
    }

    /// Reads everything until the server ends the connection: the bytes read, and the code
    /// of a close frame when one came.
    func readToEnd(seconds: Double) async throws -> (bytes: Int, closedByServer: Bool, closeCode: Int?) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(seconds)
        var ended = false
        while Date() < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                data += buffer[0..<n]
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                ended = true
                break
            } else {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        return (data.count, ended, Self.closeCode(in: data))
    }

    /// Sends one client frame (masked, as a client must) with any payload bytes.
    func sendFrame(opcode: UInt8, payload: [UInt8]) {
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// The next whole frame from the server: its opcode and payload (nil when the
    /// connection ended or nothing came in `seconds`).
    func nextFrame(seconds: Double = 10) async throws -> (opcode: UInt8, payload: [UInt8])? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if pending.count >= 2 {
                var length = Int(pending[1] & 0x7F)
                var header = 2
                if length == 126, pending.count >= 4 {
                    length = Int(pending[2]) << 8 | Int(pending[3])
                    header = 4
                }
                if length < 126 || header == 4, pending.count >= header + length {
                    let frame = (pending[0] & 0x0F, Array(pending[header..<header + length]))
                    pending.removeFirst(header + length)
                    return frame
                }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                pending += buffer[0..<n]
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                return nil
            } else {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        return nil
    }

    /// A refused WebSocket (CONTRACT section 4 has no handshake errors: the server upgrades,
    /// says why in an error frame, then closes): the error frame and the close code. On a
    /// raw socket because the Swift WebSocket client at times never hands over frames that
    /// arrive right behind its 101.
    static func refusal(port: Int, path: String) async throws -> (error: [String: Any], closeCode: Int?) {
        let raw = try RawWebSocket(port: port, path: path, receiveBuffer: 65536)
        try await raw.readUpgrade()
        guard let text = try await raw.nextFrame(seconds: 30), text.opcode == 1,
            let error = try JSONSerialization.jsonObject(with: Data(text.payload)) as? [String: Any]
        else { throw URLError(.cannotParseResponse) }
        guard let close = try await raw.nextFrame(seconds: 30), close.opcode == 8, close.payload.count >= 2 else { return (error, nil) }
        return (error, Int(close.payload[0]) << 8 | Int(close.payload[1]))
    }

    /// Walks the server's (unmasked) frames and returns the close frame's code, if any.
    static func closeCode(in data: [UInt8]) -> Int? {
        var i = 0
        while i + 2 <= data.count {
            let opcode = data[i] & 0x0F
            var length = Int(data[i + 1] & 0x7F)
            var header = 2
            if length == 126 {
                guard i + 4 <= data.count else { return nil }
                length = Int(data[i + 2]) << 8 | Int(data[i + 3])
                header = 4
            } else if length == 127 {
                guard i + 10 <= data.count else { return nil }
                length = (0..<8).reduce(0) { $0 << 8 | Int(data[i + 2 + $1]) }
                header = 10
            }
            if opcode == 8, i + header + 2 <= data.count { return Int(data[i + header]) << 8 | Int(data[i + header + 1]) }
            i += header + length
        }
        return nil
    }
}
