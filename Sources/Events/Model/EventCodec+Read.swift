import Foundation

/// The log's own reader of events: the counterpart of `body(_:)`, reading the JSON of a
/// stored event straight into an `Event`, because `JSONDecoder` costs about 10 µs an event
/// on Linux and every event is read at least once per process (the hub's tail and the
/// projectors share one decode). It reads any key order and whitespace, and gives up
/// (nil) on anything else it does not expect: an unknown or repeated key, a type it does
/// not know, an older schema version, a number that is not an integer, a bad escape. The
/// caller then decodes with `JSONDecoder`, which upcasts or explains the error.
/// `EventReaderTests` checks it against `JSONDecoder` for every event type.
extension EventCodec {
    /// The event, or nil where this reader gives up; callers use `decode(_:)`, which falls back to `JSONDecoder` then.
    public static func read(_ json: String) -> Event? {
        var json = json
        return json.withUTF8 { bytes in
            var reader = JSONReader(bytes)
            guard let event = reader.event(), reader.atEnd else { return nil }
            return event
        }
    }
}

/// A value of an event's `data` object.
enum DataValue {
    case string(String)
    case integer(Int64)
    case strings([String])
    case null
}

struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var atEnd: Bool {
        mutating get {
            skipSpace()
            return i == bytes.count
        }
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    /// Skips whitespace, then takes `byte` if it comes next.
    mutating func take(_ byte: UInt8) -> Bool {
        skipSpace()
        guard i < bytes.count, bytes[i] == byte else { return false }
        i += 1
        return true
    }

    mutating func take(_ word: StaticString) -> Bool {
        skipSpace()
        let count = word.utf8CodeUnitCount
        guard i + count <= bytes.count else { return false }
        for k in 0..<count where bytes[i + k] != word.utf8Start[k] { return false }
        i += count
        return true
    }

    /// The members of an object, each key handed to `member`, which reads its value
    /// (false: give up, as it must for a key it has seen already). False when malformed.
    mutating func object(_ member: (inout JSONReader, String) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        if take(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = string(), take(UInt8(ascii: ":")), member(&self, key) else { return false }
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "}"))
    }

    mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = i
        // The common case: no escape; the bytes are taken as they are.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\") {
            guard bytes[i] >= 0x20 else { return nil }
            i += 1
        }
        guard i < bytes.count else { return nil }
        if bytes[i] == UInt8(ascii: "\"") {
            defer { i += 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }
        var out = Array(bytes[start..<i])
        while i < bytes.count {
            let byte = bytes[i]
            i += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { return nil }
                let escaped = bytes[i]
                i += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {  // a surrogate pair
                        guard take("\\u"), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    out += Array(String(Character(unicode)).utf8)
                default: return nil
                }
            case 0..<0x20:
                return nil
            default:
                out.append(byte)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard i + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[i]
            i += 1
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value << 4 | UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value << 4 | UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = value << 4 | UInt32(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
        return value
    }

    /// An integer without fraction or exponent (anything else: nil).
    mutating func integer() -> Int64? {
        skipSpace()
        let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        let start = i
        var value: Int64 = 0
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (plus, o2) = times.addingReportingOverflow(Int64(bytes[i] - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = plus
            i += 1
        }
        guard i > start, i == start + 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        if i < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[i]) { return nil }
        return negative ? -value : value
    }

    /// A string or null (nil when neither).
    mutating func optionalString() -> String?? {
        if take("null") { return .some(nil) }
        return string().map { .some($0) }
    }

    mutating func dataValue() -> DataValue? {
        skipSpace()
        guard i < bytes.count else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "\""): return string().map(DataValue.string)
        case UInt8(ascii: "n"): return take("null") ? .null : nil
        case UInt8(ascii: "["):
            i += 1
            var items: [String] = []
            if take(UInt8(ascii: "]")) { return .strings(items) }
            repeat {
                guard let item = string() else { return nil }
                items.append(item)
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]")) ? .strings(items) : nil
        default: return integer().map(DataValue.integer)
        }
    }

    mutating func event() -> Event? {
        var id: String?
        var at: Date?
        var actorId: String?
        var type: EventType?
        var v: Int64?
        var roomId: String??
        var seq: Int64??
        var hash: String??
        var prevHash: String??
        var data: [String: DataValue]?
        // Each key once: a repeated one makes the reader give up (JSONDecoder's choice of
        // which to keep is its own).
        let read = object { reader, key in
            switch key {
            case "id" where id == nil:
                id = reader.string()
                return id != nil
            case "at" where at == nil:
                at = reader.string().flatMap(parseTimestamp)
                return at != nil
            case "actorId" where actorId == nil:
                actorId = reader.string()
                return actorId != nil
            case "type" where type == nil:
                type = reader.string().flatMap(EventType.init(rawValue:))
                return type != nil
            case "v" where v == nil:
                v = reader.integer()
                return v != nil
            case "roomId" where roomId == nil:
                roomId = reader.optionalString()
                return roomId != nil
            case "hash" where hash == nil:
                hash = reader.optionalString()
                return hash != nil
            case "prevHash" where prevHash == nil:
                prevHash = reader.optionalString()
                return prevHash != nil
            case "seq" where seq == nil:
                if reader.take("null") { seq = .some(nil) } else { seq = reader.integer().map { .some($0) } }
                return seq != nil
            case "data" where data == nil:
                var fields: [String: DataValue] = [:]
                guard
                    reader.object({ reader, key in
                        guard fields[key] == nil, let value = reader.dataValue() else { return false }
                        fields[key] = value
                        return true
                    })
                else { return false }
                data = fields
                return true
            default:
                return false
            }
        }
        guard read, let id, let at, let actorId, let type, let v, let fields = data, v == Int64(type.currentVersion),
            let eventData = Self.eventData(type, fields)
        else { return nil }
        return Event(
            id: id, at: at, actorId: actorId, roomId: roomId ?? nil, seq: seq ?? nil, data: eventData, v: Int(v),
            hash: hash ?? nil, prevHash: prevHash ?? nil)
    }
}
