import CHiredis

/// One hiredis connection. Its methods block the calling thread: they are only called from
/// a `RedisClient.withConnection` body, which runs on the client's `BlockingExecutor`.
///
/// `@unchecked Sendable`: the context is used by one thread at a time, because the pool
/// leases it to one caller and that caller's body runs on one executor thread.
public final class RedisConnection: PooledConnection, @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>
    private let commandTimeoutMs: Int
    private var currentTimeoutMs: Int
    /// False once a command got no reply (connection lost or timed out) or after `close()`: the pool then retires it.
    public private(set) var isUsable = true
    private var isClosed = false

    init(endpoint: RedisEndpoint, connectTimeoutMs: Int, commandTimeoutMs: Int) throws {
        guard let context = redisConnectWithTimeout(endpoint.host, Int32(endpoint.port), parley_timeval_ms(connectTimeoutMs)) else {
            throw DriverError(.redis, .unavailable, "cannot allocate a hiredis context")
        }
        if context.pointee.err != 0 {
            let reason = Self.errorText(context)
            redisFree(context)
            throw DriverError(.redis, .unavailable, "cannot connect to \(endpoint.host):\(endpoint.port): \(reason)")
        }
        self.context = context
        self.commandTimeoutMs = commandTimeoutMs
        self.currentTimeoutMs = commandTimeoutMs
        _ = redisSetTimeout(context, parley_timeval_ms(commandTimeoutMs))
        _ = redisEnableKeepAlive(context)
        do {
            if let password = endpoint.password {
                let auth = try command(endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
                if case .error(let text) = auth {
                    throw DriverError(.redis, .authentication, "AUTH refused by \(endpoint.host):\(endpoint.port): \(text)")
                }
            }
            if endpoint.database != 0, case .error(let text) = try command(["SELECT", String(endpoint.database)]) {
                throw DriverError(.redis, .invalid, "SELECT \(endpoint.database) refused: \(text)")
            }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Frees the hiredis context; later calls do nothing. The pool calls it on retiring the connection, the subscriber on
    /// the connections it opens itself.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        isUsable = false
        redisFree(context)
    }

    /// Sends one command and waits for its reply. A Redis error reply comes back as
    /// `.error`; a broken connection or timeout throws and retires the connection.
    public func command(_ arguments: [String]) throws -> RedisValue {
        let raw = Self.withArgv(arguments) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let raw else { throw connectionFailure() }
        defer { freeReplyObject(raw) }
        return Self.value(of: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Like `command`, but waits up to `timeoutMs` for the reply (for `XREAD BLOCK`).
    public func command(_ arguments: [String], timeoutMs: Int) throws -> RedisValue {
        setTimeout(timeoutMs)
        defer { if isUsable { setTimeout(commandTimeoutMs) } }
        return try command(arguments)
    }

    /// Sends every command before reading any reply (one round trip for the batch) and
    /// returns the replies in order.
    public func pipeline(_ commands: [[String]]) throws -> [RedisValue] {
        for arguments in commands {
            let status = Self.withArgv(arguments) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            if status != REDIS_OK { throw connectionFailure() }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            if redisGetReply(context, &raw) != REDIS_OK || raw == nil { throw connectionFailure() }
            replies.append(Self.value(of: raw!.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        return replies
    }

    /// Waits for the next reply without sending anything (pub/sub messages); `timeoutMs`
    /// 0 waits without limit.
    public func readReply(timeoutMs: Int) throws -> RedisValue {
        setTimeout(timeoutMs)
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil { throw connectionFailure() }
        defer { freeReplyObject(raw) }
        return Self.value(of: raw!.assumingMemoryBound(to: redisReply.self))
    }

    private func setTimeout(_ ms: Int) {
        guard ms != currentTimeoutMs else { return }
        _ = redisSetTimeout(context, parley_timeval_ms(ms))
        currentTimeoutMs = ms
    }

    private func connectionFailure() -> DriverError {
        isUsable = false
        let reason = Self.errorText(context)
        if reason.contains("temporarily unavailable") || reason.contains("timed out") {
            return DriverError(.redis, .timeout, "no reply within \(currentTimeoutMs) ms")
        }
        return DriverError(.redis, .unavailable, "connection lost: \(reason)")
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { bytes in
            let text = String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
            return text.isEmpty ? "error \(context.pointee.err)" : text
        }
    }

    /// Lends hiredis an argv: one buffer holding every argument, pointers into it, lengths.
    private static func withArgv<R>(
        _ arguments: [String],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        var bytes: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        offsets.reserveCapacity(arguments.count)
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            offsets.append(bytes.count)
            let before = bytes.count
            bytes.append(contentsOf: argument.utf8)
            lengths.append(bytes.count - before)
        }
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { lens in
                    body(Int32(arguments.count), argv.baseAddress!, lens.baseAddress!)
                }
            }
        }
    }

    private static func value(of reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(text(r.str, r.len))
        case REDIS_REPLY_STATUS:
            return .status(text(r.str, r.len))
        case REDIS_REPLY_ERROR:
            return .error(text(r.str, r.len))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                if let child = r.element[i] { elements.append(value(of: child)) } else { elements.append(.null) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func text(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }
}
