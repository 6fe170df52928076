/// Redis Cluster's key space: 16,384 hash slots, a key's slot being the CRC16 (XMODEM) of
/// its hash tag (the text between the first `{` and the next `}`, when not empty) or of the
/// whole key. Every command Parley sends is routed by the slot of the key this names for it.
public enum RedisSlot {
    /// The number of hash slots of every Redis Cluster.
    public static let count = 16384

    /// The slot of `key`, as `CLUSTER KEYSLOT` answers it.
    public static func of(_ key: String) -> Int {
        let whole = Array(key.utf8)
        var bytes = whole[...]
        if let open = whole.firstIndex(of: UInt8(ascii: "{")),
            let close = whole[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            bytes = whole[(open + 1)..<close]
        }
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(crc >> 8) ^ byte)]
        }
        return Int(crc) & (count - 1)
    }

    /// The key a command is routed by: the first key it names, or nil for a command of no key (`PING`, `SCRIPT LOAD`,
    /// `PUBLISH`, `WAIT`, `SCAN`, `INFO`, `CLUSTER`), which any primary may answer. A command naming keys of two slots is
    /// refused by Redis (`CROSSSLOT`), never split here.
    public static func routingKey(of arguments: [String]) -> String? {
        guard let name = arguments.first?.uppercased() else { return nil }
        switch name {
        case "EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL":
            guard arguments.count > 3, let keys = Int(arguments[2]), keys > 0 else { return nil }
            return arguments[3]
        case "XREAD", "XREADGROUP":
            guard let streams = arguments.firstIndex(where: { $0.uppercased() == "STREAMS" }), streams + 1 < arguments.count
            else { return nil }
            return arguments[streams + 1]
        case "XGROUP", "XINFO", "OBJECT", "MEMORY":
            return arguments.count > 2 ? arguments[2] : nil
        case "PING", "SCRIPT", "PUBLISH", "WAIT", "SCAN", "INFO", "CLUSTER", "DBSIZE", "FLUSHDB", "FLUSHALL", "CONFIG",
            "CLIENT", "ASKING", "READONLY", "ECHO", "TIME", "ROLE":
            return nil
        default:
            return arguments.count > 1 ? arguments[1] : nil
        }
    }

    /// Whether a command only reads, so that sending it again after its connection broke (a primary failing over) cannot
    /// do anything twice.
    public static func onlyReads(_ arguments: [String]) -> Bool {
        guard let name = arguments.first?.uppercased() else { return false }
        if name == "XINFO" || name == "CLUSTER" || name == "SCRIPT" { return true }
        return readCommands.contains(name)
    }

    private static let readCommands: Set<String> = [
        "GET", "MGET", "HGET", "HGETALL", "HMGET", "HEXISTS", "HLEN", "HVALS", "HKEYS", "SMEMBERS", "SISMEMBER", "SCARD",
        "EXISTS", "TYPE", "TTL", "PTTL", "XRANGE", "XREVRANGE", "XLEN", "XREAD", "XPENDING", "PING", "SCAN", "INFO",
        "DBSIZE", "MEMORY", "ECHO", "TIME", "ROLE",
    ]

    /// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), one entry per byte value.
    private static let table: [UInt16] = (0..<256).map { byte in
        var crc = UInt16(byte) << 8
        for _ in 0..<8 { crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
