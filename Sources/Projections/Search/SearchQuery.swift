import Foundation

/// What a reader typed into search, as a PostgreSQL `tsquery` over the `simple` configuration: every word is a prefix
/// (`deploy` finds "deployment"), a quoted phrase is its words in that order exactly, and all of them must match.
/// A word is a run of letters, digits and marks, with `.`, `@`, `-`, `_`, `/` and `+` kept inside it: `to_tsquery`
/// then splits `e-mail`, `3.14` or `ann@example.com` with the same parser that made the message's tsvector, so they
/// match as written. Nothing else the reader types reaches the tsquery syntax (`&`, `|`, `!`, `:`, `'`, `\` and quotes
/// are separators). A word of one or two characters matches only itself: as a prefix it would match most of the log.
/// A word is cut at 100 scalars (PostgreSQL refuses an operand over 2,047 bytes).
public struct SearchQuery: Sendable, Equatable {
    /// One thing to match: a word (a prefix unless it is one character long) or a phrase.
    public enum Term: Sendable, Equatable {
        case word(String)
        case phrase([String])
    }

    /// In the order typed, each once.
    public let terms: [Term]

    /// At most this many terms are kept: a query of 500 characters cannot make a tsquery of hundreds of parts.
    public static let maxTerms = 16

    /// Nil when `text` holds no word at all (only spaces or punctuation).
    public init?(_ text: String) {
        var terms: [Term] = []
        func add(_ term: Term) {
            if !terms.contains(term), terms.count < Self.maxTerms { terms.append(term) }
        }
        // Quotes split the text: odd pieces are inside a pair of quotes; an unclosed quote runs to the end.
        for (index, piece) in text.split(separator: "\"", omittingEmptySubsequences: false).enumerated() {
            let words = Self.words(piece)
            if index % 2 == 1 {
                if words.count == 1 { add(.word(words[0])) } else if !words.isEmpty { add(.phrase(words)) }
            } else {
                for word in words { add(.word(word)) }
            }
        }
        guard !terms.isEmpty else { return nil }
        self.terms = terms
    }

    /// The words of `text`: runs of letters, digits, marks and the joiners `.@-_/+`, without joiners at either end, as
    /// typed: `to_tsquery` lower-cases them with the database's own rules, the ones that made the message's tsvector.
    static func words(_ text: Substring) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        func end() {
            let word = String(
                String.UnicodeScalarView(
                    String(current).trimmingCharacters(in: CharacterSet(charactersIn: joiners)).unicodeScalars.prefix(maxWordScalars)))
            if !word.isEmpty { words.append(word) }
            current = String.UnicodeScalarView()
        }
        for scalar in text.unicodeScalars {
            if isWordScalar(scalar) || (joiners.unicodeScalars.contains(scalar) && !current.isEmpty) {
                current.append(scalar)
            } else {
                end()
            }
        }
        end()
        return words
    }

    private static let joiners = ".@-_/+"
    /// The longest word kept, in scalars: longer ones are cut (and match as a prefix).
    static let maxWordScalars = 100

    private static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber, .letterNumber,
            .otherNumber, .nonspacingMark, .spacingMark, .enclosingMark:
            return true
        default: return false
        }
    }

    /// The `tsquery` text for `to_tsquery('simple', …)`: terms joined by `&`, a word `'w':*`, a phrase `('a' <-> 'b')`.
    /// Words hold no quote and no backslash, so quoting them needs no escape.
    public var tsquery: String {
        terms.map { term in
            switch term {
            case .word(let word): return word.count > 2 ? "'\(word)':*" : "'\(word)'"
            case .phrase(let words): return "(" + words.map { "'\($0)'" }.joined(separator: " <-> ") + ")"
            }
        }.joined(separator: " & ")
    }
}

/// Where a page of search results continues: after the last result of the previous page. By time it is that result's
/// (sent time, room, seq), the order's own key, so a message sent meanwhile neither shifts nor repeats the pages; by
/// rank it is how many results came before (ranks change as messages are edited, so a key would not hold).
public enum SearchCursor: Sendable, Equatable {
    case time(sentMs: Int64, roomId: String, seq: Int64)
    case rank(offset: Int)

    /// The text a client passes back as `before`: `t.<ms>.<seq>.<room>` or `r.<offset>`.
    public var text: String {
        switch self {
        case .time(let ms, let room, let seq): return "t.\(ms).\(seq).\(room)"
        case .rank(let offset): return "r.\(offset)"
        }
    }

    /// Nil when `text` is not a cursor this server made.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        switch parts.first {
        case "t":
            // No U+0000 in the room: PostgreSQL text cannot hold it.
            guard parts.count == 4, let ms = Int64(parts[1]), let seq = Int64(parts[2]), !parts[3].isEmpty,
                !parts[3].unicodeScalars.contains("\u{0}")
            else { return nil }
            self = .time(sentMs: ms, roomId: String(parts[3]), seq: seq)
        case "r":
            guard parts.count == 2, let offset = Int(parts[1]), offset >= 0 else { return nil }
            self = .rank(offset: offset)
        default: return nil
        }
    }
}
