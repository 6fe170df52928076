import HummingbirdBcrypt
import NIOPosix

/// bcrypt, on NIO's thread pool: a hash costs about 250 ms at cost 12, which must never
/// run on an event loop or the cooperative pool.
struct Passwords: Sendable {
    let cost: UInt8

    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
