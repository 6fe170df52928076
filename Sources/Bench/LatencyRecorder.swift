import Histogram
import NIOConcurrencyHelpers

/// Latencies in microseconds, recorded from many tasks into one HdrHistogram.
final class LatencyRecorder: Sendable {
    private let histogram = NIOLockedValueBox(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))

    func record(_ duration: Duration) {
        let micros = UInt64(max(1, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
        histogram.withLockedValue { _ = $0.record(micros) }
    }

    var count: UInt64 { histogram.withLockedValue { $0.totalCount } }

    /// p50 / p90 / p99 / p99.9 / max, in milliseconds.
    var summary: (p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        histogram.withLockedValue { h in
            (
                Double(h.valueAtPercentile(50)) / 1000, Double(h.valueAtPercentile(90)) / 1000, Double(h.valueAtPercentile(99)) / 1000,
                Double(h.valueAtPercentile(99.9)) / 1000, Double(h.max) / 1000
            )
        }
    }
}
