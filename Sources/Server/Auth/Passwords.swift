import HummingbirdBcrypt
import NIOConcurrencyHelpers
import NIOPosix

/// bcrypt, on NIO's thread pool: a hash costs about 250 ms at cost 12, which must never
/// run on an event loop or the cooperative pool. The pool's queue is bounded: past
/// `maxQueued` hashes waiting, a login or registration is answered 503 at once instead of
/// queueing work (and memory) without end under a flood of logins.
struct Passwords: Sendable {
    let cost: UInt8
    /// A hash of a random password at `cost`: a login for a username that does not exist checks against it, so that it
    /// takes as long as a wrong password for one that does (no user enumeration by timing).
    let dummy: String
    let maxQueued: Int
    private let queued = NIOLockedValueBox(0)

    /// Makes the dummy hash at `cost` (on the thread pool).
    static func make(cost: UInt8, maxQueued: Int = 64) async throws -> Passwords {
        let secret = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
        let dummy = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(secret, cost: cost) }
        return Passwords(cost: cost, dummy: dummy, maxQueued: maxQueued)
    }

    private init(cost: UInt8, dummy: String, maxQueued: Int) {
        self.cost = cost
        self.dummy = dummy
        self.maxQueued = max(1, maxQueued)
    }

    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await bounded { Bcrypt.hash(password, cost: cost) }
    }

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await bounded { Bcrypt.verify(password, hash: hash) }
    }

    /// Checks `password` against the dummy hash: the same work as a real check, always false.
    func verifyNobody(_ password: String) async throws {
        _ = try await verify(password, hash: dummy)
    }

    private func bounded<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        let admitted = queued.withLockedValue { count in
            guard count < maxQueued else { return false }
            count += 1
            return true
        }
        guard admitted else {
            throw APIError(
                .serviceUnavailable, .serviceUnavailable, "too many password checks at once; try again shortly", retryAfterMs: 1000)
        }
        defer { queued.withLockedValue { $0 -= 1 } }
        return try await NIOThreadPool.singleton.runIfActive(work)
    }
}
