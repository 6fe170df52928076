import Dispatch
import Foundation
import NIOConcurrencyHelpers

/// Reports a long run on standard error: on a terminal one line rewritten in place
/// (events done, events/s, ETA) a few times a second; otherwise one plain line every
/// `interval` seconds, so logs stay readable.
final class Progress: Sendable {
    private struct State {
        var done = 0
        var note = ""
        var lastPrint: ContinuousClock.Instant
        var printed = false
    }

    let label: String
    let total: Int?
    private let started = ContinuousClock.now
    private let interval: Duration
    private let terminal: Bool
    private let state: NIOLockedValueBox<State>

    init(_ label: String, total: Int?, interval: Double = 2, terminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.total = total
        self.terminal = terminal
        self.interval = terminal ? .milliseconds(200) : .milliseconds(Int64(interval * 1000))
        self.state = NIOLockedValueBox(State(lastPrint: .now))
    }

    /// Records `done` events; prints when the interval has passed.
    func update(_ done: Int, note: String = "") {
        let line: String? = state.withLockedValue { s in
            s.done = done
            s.note = note
            let now = ContinuousClock.now
            guard now - s.lastPrint >= interval else { return nil }
            s.lastPrint = now
            s.printed = true
            return render(done, note: note, elapsed: now - started)
        }
        if let line { write(line, final: false) }
    }

    /// Shows `note` beside the count (why the run is waiting, say).
    func note(_ note: String) {
        update(state.withLockedValue { $0.done }, note: note)
    }

    /// Prints the closing line: the count, the time and the rate.
    func finish(_ done: Int, suffix: String = "") {
        let elapsed = ContinuousClock.now - started
        let line =
            "\(label): \(Self.grouped(done)) events in \(Self.seconds(elapsed)) (\(Self.grouped(Self.rate(done, elapsed))) events/s)\(suffix)"
        write(line, final: true)
    }

    func render(_ done: Int, note: String, elapsed: Duration) -> String {
        let rate = Self.rate(done, elapsed)
        var line = "\(label): \(Self.grouped(done))"
        if let total, total > 0 {
            line += " / \(Self.grouped(total)) events (\(min(100, done * 100 / total))%)"
        } else {
            line += " events"
        }
        line += ", \(Self.grouped(rate)) events/s"
        if let total, rate > 0, total > done { line += ", ETA \(Self.clock(Double(total - done) / Double(rate)))" }
        if !note.isEmpty { line += ", \(note)" }
        return line
    }

    private func write(_ line: String, final: Bool) {
        if terminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (final ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    static func rate(_ done: Int, _ elapsed: Duration) -> Int {
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return s > 0 ? Int(Double(done) / s) : 0
    }

    static func seconds(_ elapsed: Duration) -> String {
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return String(format: "%.1f s", s)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    /// 1234567 → "1,234,567".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }
}

/// Runs `body` in a task that SIGINT (Ctrl-C) and SIGTERM cancel. Work stops at its next
/// batch boundary with everything done so far saved; `Interrupted` is thrown then.
func runInterruptible<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await body() }
    let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { task.cancel() }
        source.resume()
        return source
    }
    defer { for source in sources { source.cancel() } }
    do {
        return try await task.value
    } catch is CancellationError {
        throw Interrupted()
    }
}

/// The run was stopped by a signal; what it did so far is kept.
struct Interrupted: Error {}
