import Foundation

/// A value bound to a query parameter, sent in PostgreSQL's text format.
public protocol PostgresBindable: Sendable {
    /// The text PostgreSQL parses for this value, or `nil` for SQL NULL.
    var postgresText: String? { get }
}

extension String: PostgresBindable { public var postgresText: String? { self } }
extension Int: PostgresBindable { public var postgresText: String? { String(self) } }
extension Int64: PostgresBindable { public var postgresText: String? { String(self) } }
extension Int32: PostgresBindable { public var postgresText: String? { String(self) } }
extension Double: PostgresBindable { public var postgresText: String? { String(self) } }
extension Bool: PostgresBindable { public var postgresText: String? { self ? "t" : "f" } }
extension UUID: PostgresBindable { public var postgresText: String? { uuidString.lowercased() } }
extension Date: PostgresBindable {
    public var postgresText: String? {
        // ISO 8601 with milliseconds, in UTC: what timestamptz parses without ambiguity.
        formatISO8601Milliseconds(self)
    }
}
extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    public var postgresText: String? { self?.postgresText }
}

/// The rows of a query, copied out of the `PGresult`: column names and text values.
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    public let values: [[String?]]
    /// The command tag's row count (e.g. rows inserted or updated).
    public let affectedRows: Int

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }
    public var first: PostgresRow? { values.first.map { PostgresRow(columns: columns, values: $0) } }

    public func makeIterator() -> AnyIterator<PostgresRow> {
        var index = 0
        return AnyIterator {
            guard index < values.count else { return nil }
            defer { index += 1 }
            return PostgresRow(columns: columns, values: values[index])
        }
    }
}

/// One row: values by column name or position, decoded from PostgreSQL's text format.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    public subscript(_ column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { return nil }
        return values[index]
    }

    public func string(_ column: String) -> String? { self[column] }
    public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }
    public func int64(_ column: String) -> Int64? { self[column].flatMap { Int64($0) } }
    public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" || $0 == "true" } }
    public func date(_ column: String) -> Date? { self[column].flatMap(parsePostgresTimestamp) }
}

/// `2026-11-25T13:49:10.123Z`.
public func formatISO8601Milliseconds(_ date: Date) -> String {
    // The style truncates to the millisecond: add half of one so that it rounds.
    let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    return date.addingTimeInterval(0.0005).formatted(style)
}

/// Parses timestamptz text as PostgreSQL prints it (`2026-11-25 13:49:10.123+00`).
func parsePostgresTimestamp(_ text: String) -> Date? {
    var iso = text.replacingOccurrences(of: " ", with: "T")
    if iso.hasSuffix("+00") { iso = String(iso.dropLast(3)) + "Z" }
    if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(iso) { return date }
    return try? Date.ISO8601FormatStyle().parse(iso)
}
