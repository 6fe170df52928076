import Foundation

/// Turns events into the JSON the log stores and back, upcasting old schema versions on
/// read. Dates are ISO 8601 UTC with milliseconds; keys are sorted so that the bytes of
/// an event (and so its hash) depend only on its content.
public enum EventCodec {
    /// Rewrites the `data` of an event from `version` to `version + 1`.
    public typealias Upcaster = @Sendable (_ data: [String: Any]) -> [String: Any]

    /// Every upcaster, by type and the version it reads. Old events stay readable forever:
    /// an upcaster is never removed once a version was written.
    static let upcasters: [EventType: [Int: Upcaster]] = [
        // user.registered v1 had no displayName: the username stood in for it.
        .userRegistered: [
            1: { data in
                var data = data
                if data["displayName"] == nil { data["displayName"] = data["username"] }
                return data
            }
        ]
    ]

    /// Why stored bytes are not a readable event.
    public struct DecodeError: Error, CustomStringConvertible {
        /// What is wrong with the bytes (not an event object, no upcaster for its version, a decoding error), for logs.
        public let description: String
    }

    /// The encoder of the stored form: sorted keys, unescaped slashes, `formatTimestamp` times, so bytes follow content.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTimestamp(date))
        }
        return encoder
    }

    /// A decoder reading times with `parseTimestamp`; it does not upcast, so read stored events with `decode(_:)`.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseTimestamp(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 time: \(text)")
            }
            return date
        }
        return decoder
    }

    /// The JSON of an event.
    public static func encode(_ event: Event) throws -> String {
        String(decoding: try makeEncoder().encode(event), as: UTF8.self)
    }

    /// The event of a stored JSON: read by hand (`read(_:)`), or by JSONDecoder when that
    /// reader gives up (older versions, which are upcast; errors, which are explained).
    public static func decode(_ json: String) throws -> Event {
        if let event = read(json) { return event }
        return try decode(Data(json.utf8))
    }

    /// Reads an event with JSONDecoder, upcasting its data when it was written with an older version.
    public static func decode(_ bytes: Data) throws -> Event {
        let decoder = makeDecoder()
        do {
            return try decoder.decode(Event.self, from: bytes)
        } catch let old as Event.NeedsUpcast {
            return try decoder.decode(Event.self, from: try upcast(bytes, type: old.type, from: old.version))
        } catch let error as DecodingError {
            throw DecodeError(description: "unreadable event: \(error)")
        }
    }

    /// Applies the upcasters from `version` up to the current one and sets `v`.
    static func upcast(_ bytes: Data, type: EventType, from version: Int) throws -> Data {
        guard var object = try JSONSerialization.jsonObject(with: bytes) as? [String: Any],
            var data = object["data"] as? [String: Any]
        else { throw DecodeError(description: "event is not a JSON object with data") }
        var v = version
        while v < type.currentVersion {
            guard let step = upcasters[type]?[v] else {
                throw DecodeError(description: "no upcaster for \(type.rawValue) v\(v)")
            }
            data = step(data)
            v += 1
        }
        object["data"] = data
        object["v"] = v
        return try JSONSerialization.data(withJSONObject: object)
    }
}

/// `2026-11-25T13:49:10.123Z`: UTC, rounded to the millisecond (events carry milliseconds).
public func formatTimestamp(_ date: Date) -> String {
    let ms = Int64((date.timeIntervalSince1970 * 1000).rounded())
    return formatUTCMilliseconds(ms) ?? formatTimestampWithFoundation(ms)
}

/// `formatTimestamp` written byte by byte (Foundation's formatter takes over a microsecond,
/// and every append, ack and projected row writes a time); nil outside the years
/// 1583–9999 (before 1583 Foundation's calendar is the Julian one).
func formatUTCMilliseconds(_ ms: Int64) -> String? {
    let days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
    let inDay = ms - days * 86_400_000
    // The civil date of a day count (H. Hinnant's civil_from_days).
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    guard (1583...9999).contains(year) else { return nil }
    var out = [UInt8](repeating: 0, count: 24)
    func put(_ value: Int64, at index: Int, digits: Int) {
        var value = value
        for k in stride(from: index + digits - 1, through: index, by: -1) {
            out[k] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
    }
    put(year, at: 0, digits: 4)
    out[4] = UInt8(ascii: "-")
    put(month, at: 5, digits: 2)
    out[7] = UInt8(ascii: "-")
    put(day, at: 8, digits: 2)
    out[10] = UInt8(ascii: "T")
    put(inDay / 3_600_000, at: 11, digits: 2)
    out[13] = UInt8(ascii: ":")
    put(inDay / 60_000 % 60, at: 14, digits: 2)
    out[16] = UInt8(ascii: ":")
    put(inDay / 1000 % 60, at: 17, digits: 2)
    out[19] = UInt8(ascii: ".")
    put(inDay % 1000, at: 20, digits: 3)
    out[23] = UInt8(ascii: "Z")
    return String(decoding: out, as: UTF8.self)
}

/// `formatTimestamp` through Foundation, for the years `formatUTCMilliseconds` leaves out.
public func formatTimestampWithFoundation(_ ms: Int64) -> String {
    let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
    let whole = Date(timeIntervalSince1970: Double(seconds)).formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
    let fraction = ms - seconds * 1000
    return String(whole.dropLast()) + "." + String(String(fraction + 1000).dropFirst()) + "Z"
}

/// Parses ISO 8601 UTC with or without fractional seconds, to the millisecond.
public func parseTimestamp(_ text: String) -> Date? {
    if let ms = utcMilliseconds(text) { return Date(timeIntervalSince1970: Double(ms) / 1000) }
    return parseTimestampWithFoundation(text)
}

/// The form the log writes, `YYYY-MM-DDTHH:MM:SS[.fff…]Z`, read byte by byte (Foundation's
/// parser takes about 2 µs, and every event read has a time); nil for anything else, and
/// before 1583 (Foundation's calendar is the Julian one there), which Foundation's parser
/// then reads or refuses.
func utcMilliseconds(_ text: String) -> Int64? {
    var text = text
    return text.withUTF8 { b -> Int64? in
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b[b.count - 1] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ from: Int, _ count: Int) -> Int64? {
            var value: Int64 = 0
            for k in from..<from + count {
                guard b[k] >= UInt8(ascii: "0"), b[k] <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(b[k] - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2), year >= 1583, (1...12).contains(month), hour < 24, minute < 60,
            second < 60
        else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays: [Int64] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day >= 1, day <= monthDays[Int(month - 1)] else { return nil }
        var ms: Int64 = 0
        if b.count > 20 {
            // A fraction: at least one digit; its first three are the milliseconds.
            guard b[19] == UInt8(ascii: "."), b.count > 21 else { return nil }
            for k in 20..<b.count - 1 {
                guard b[k] >= UInt8(ascii: "0"), b[k] <= UInt8(ascii: "9") else { return nil }
            }
            for k in 20..<23 { ms = ms * 10 + (k < b.count - 1 ? Int64(b[k] - UInt8(ascii: "0")) : 0) }
        } else if b[19] != UInt8(ascii: "Z") {
            return nil
        }
        // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let days = era * 146_097 + yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear - 719_468
        return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms
    }
}

/// `parseTimestamp` for the forms `utcMilliseconds` does not take (an offset instead of `Z`, say).
public func parseTimestampWithFoundation(_ text: String) -> Date? {
    var main = Substring(text)
    var ms: Int64 = 0
    if let dot = text.firstIndex(of: ".") {
        guard let end = text[dot...].firstIndex(where: { !$0.isNumber && $0 != "." }) else { return nil }
        let digits = text[text.index(after: dot)..<end]
        guard !digits.isEmpty, digits.allSatisfy(\.isNumber) else { return nil }
        ms = Int64(String((digits + "000").prefix(3))) ?? 0
        main = text[..<dot] + text[end...]
    }
    guard let whole = try? Date.ISO8601FormatStyle().parse(String(main)) else { return nil }
    return Date(timeIntervalSince1970: Double(Int64(whole.timeIntervalSince1970) * 1000 + ms) / 1000)
}

/// `date` in whole Unix milliseconds (rounded: a time read back from an event is a whole millisecond, which a `Double`
/// of seconds may hold a hair below).
public func unixMilliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

/// `date` rounded to the millisecond, as it reads back from an event.
public func millisecondPrecision(_ date: Date) -> Date {
    Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
}
