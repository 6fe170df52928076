/// A Redis reply, copied out of hiredis' `redisReply` at once. Bulk strings are decoded as
/// UTF-8: Parley only stores text (ids, JSON) in Redis.
public enum RedisValue: Sendable, Equatable, CustomStringConvertible {
    case status(String)
    case error(String)
    case integer(Int64)
    case string(String)
    case array([RedisValue])
    case null

    /// The text of a bulk or status reply.
    public var string: String? {
        switch self {
        case .string(let s), .status(let s): return s
        default: return nil
        }
    }

    /// The value of an integer reply, or of a bulk string holding digits.
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .string(let s): return Int64(s)
        default: return nil
        }
    }

    /// The elements of an array reply; `nil` for a null array.
    public var array: [RedisValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// A nil reply: a missing key's bulk string, or the null array of an `XREAD BLOCK` that timed out.
    public var isNull: Bool { self == .null }

    /// Rendered the way redis-cli shows replies (`(integer) 3`, `(nil)`, quoted strings), for error messages.
    public var description: String {
        switch self {
        case .status(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .null: return "(nil)"
        }
    }
}
