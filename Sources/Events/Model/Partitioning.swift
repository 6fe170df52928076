import Crypto
import Foundation

/// Maps rooms to log partitions by a stable hash and derives direct-room ids from the
/// pair of users. (The Redis names of a partition are the event log's: `Keys`.)
public struct Partitioning: Sendable, Equatable {
    /// How many partitions the log has; it must stay what the log was written with, since changing it re-homes rooms.
    public let count: Int

    /// Traps on a count below 1; pass the count the log was written with.
    public init(count: Int) {
        precondition(count >= 1, "at least one partition")
        self.count = count
    }

    /// The partition of a room: FNV-1a (64-bit) of its id modulo the partition count. Never
    /// changes for a given id and count; changing the count re-homes rooms (a migration).
    public func partition(ofRoom roomId: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in roomId.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int(hash % UInt64(count))
    }

    /// Users are registered in partition 0: registrations are rare, and keeping every
    /// username in one slot makes their uniqueness one atomic check.
    public let userPartition = 0

    /// The id of the direct room of two users: the same whichever of them writes first.
    public static func directRoomId(_ a: String, _ b: String) -> String {
        let pair = a < b ? "\(a)|\(b)" : "\(b)|\(a)"
        let digest = SHA256.hash(data: Data("direct:\(pair)".utf8))
        return "d-" + hexString(digest.prefix(12))
    }
}
