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
    /// The date as ISO 8601 in UTC with milliseconds, for `timestamptz` parameters.
    public var postgresText: String? {
        // ISO 8601 with milliseconds, in UTC: what timestamptz parses without ambiguity.
        formatISO8601Milliseconds(self)
    }
}
extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    /// The wrapped value's text, or nil (SQL NULL) when there is none.
    public var postgresText: String? { self?.postgresText }
}

/// The rows of a query, copied out of the `PGresult`: column names and text values.
public struct PostgresRows: Sendable, Sequence {
    /// The result's column names, in the order of `SELECT`; rows look their values up by these.
    public let columns: [String]
    /// One array per row, a value per column in PostgreSQL's text format; nil is SQL NULL.
    public let values: [[String?]]
    /// The command tag's row count (e.g. rows inserted or updated).
    public let affectedRows: Int

    /// How many rows the query returned (0 for a command such as UPDATE: see `affectedRows`).
    public var count: Int { values.count }
    /// True when the query returned no rows, e.g. a lookup that found nothing.
    public var isEmpty: Bool { values.isEmpty }
    /// The first row, or nil when there is none: for queries that expect at most one.
    public var first: PostgresRow? { values.first.map { PostgresRow(columns: columns, values: $0) } }

    /// Rows in the order PostgreSQL returned them, each a `PostgresRow` sharing `columns`.
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
    /// The result's column names, shared by every row of one result.
    public let columns: [String]
    /// This row's values in the text format, in the order of `columns`; nil is SQL NULL.
    public let values: [String?]

    /// The text of `column`; nil when the value is NULL or the result has no such column.
    public subscript(_ column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { return nil }
        return values[index]
    }

    /// The text of `column`; nil for NULL or a missing column.
    public func string(_ column: String) -> String? { self[column] }
    /// `column` parsed as an integer; nil for NULL, a missing column or text that is not one.
    public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }
    /// `column` parsed as a 64-bit integer (`bigint`: seqs, counts); nil for NULL, a missing column or other text.
    public func int64(_ column: String) -> Int64? { self[column].flatMap { Int64($0) } }
    /// `column` as a boolean: true for `t` or `true` (how PostgreSQL prints them); nil only for NULL or a missing column.
    public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" || $0 == "true" } }
    /// A `timestamptz` column as PostgreSQL prints it; nil for NULL, a missing column or text it cannot parse.
    public func date(_ column: String) -> Date? { self[column].flatMap(parsePostgresTimestamp) }
}

/// `2026-11-25T13:49:10.123Z`.
public func formatISO8601Milliseconds(_ date: Date) -> String {
    // The style truncates to the millisecond: add half of one so that it rounds.
    let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    return date.addingTimeInterval(0.0005).formatted(style)
}

/// Parses timestamptz text as PostgreSQL prints it (`2026-11-25 13:49:10.123+00`).
public func parsePostgresTimestamp(_ text: String) -> Date? {
    var iso = text.replacingOccurrences(of: " ", with: "T")
    if iso.hasSuffix("+00") { iso = String(iso.dropLast(3)) + "Z" }
    if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(iso) { return date }
    return try? Date.ISO8601FormatStyle().parse(iso)
}

/// A PostgreSQL array literal of text values (`{"a","b",NULL}`), for `unnest($1::text[])`.
public func postgresArray(_ values: [String?]) -> String {
    // Byte by byte: Foundation's `replacingOccurrences` took 5% of the server's CPU here.
    var out: [UInt8] = [UInt8(ascii: "{")]
    out.reserveCapacity(values.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
    for (index, value) in values.enumerated() {
        if index > 0 { out.append(UInt8(ascii: ",")) }
        guard let value else {
            out += "NULL".utf8
            continue
        }
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { out.append(UInt8(ascii: "\\")) }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\""))
    }
    out.append(UInt8(ascii: "}"))
    return String(decoding: out, as: UTF8.self)
}
