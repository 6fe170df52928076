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
        public let description: String
    }

    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTimestamp(date))
        }
        return encoder
    }

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

    /// Reads an event, upcasting its data when it was written with an older version.
    public static func decode(_ json: String) throws -> Event {
        try decode(Data(json.utf8))
    }

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
    let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
    let whole = Date(timeIntervalSince1970: Double(seconds)).formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
    let fraction = ms - seconds * 1000
    return String(whole.dropLast()) + "." + String(String(fraction + 1000).dropFirst()) + "Z"
}

/// Parses ISO 8601 UTC with or without fractional seconds, to the millisecond.
public func parseTimestamp(_ text: String) -> Date? {
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

/// `date` rounded to the millisecond, as it reads back from an event.
public func millisecondPrecision(_ date: Date) -> Date {
    Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
}
