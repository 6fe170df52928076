import ArgumentParser
import Dispatch
import Drivers
import Foundation
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What the clients received: per phase, deliveries and their latency from the scheduled send.
final class DeliveryRecorder: Sendable {
    private struct Phase {
        var recorder = LatencyRecorder()
        /// From the scheduled send to the sender's `ack` (the append done).
        var acks = LatencyRecorder()
        var delivered = 0
        var receipts = 0
        var first: UInt64 = .max
        var last: UInt64 = 0
    }
    private struct State {
        var phases: [Int: Phase] = [:]
        var current: Int?
        var errors = 0
        var firstError: String?
    }
    private let state = NIOLockedValueBox(State())

    func startPhase(_ phase: Int) {
        state.withLockedValue {
            $0.phases[phase] = Phase()
            $0.current = phase
        }
    }

    func record(phase: Int, scheduled: UInt64, at now: UInt64) {
        let recorder: LatencyRecorder? = state.withLockedValue { s in
            guard var p = s.phases[phase] else { return nil }
            p.delivered += 1
            p.first = min(p.first, now)
            p.last = max(p.last, now)
            s.phases[phase] = p
            return p.recorder
        }
        recorder?.record(.nanoseconds(Int64(now) - Int64(scheduled)))
    }

    /// A delivery without a time to measure (a read receipt), counted in the phase running now.
    func recordReceipt(at now: UInt64) {
        state.withLockedValue { s in
            guard let phase = s.current, var p = s.phases[phase] else { return }
            p.delivered += 1
            p.receipts += 1
            p.last = max(p.last, now)
            s.phases[phase] = p
        }
    }

    func receipts(_ phase: Int) -> Int { state.withLockedValue { $0.phases[phase]?.receipts ?? 0 } }

    func recordAck(phase: Int, scheduled: UInt64, at now: UInt64) {
        state.withLockedValue { $0.phases[phase]?.acks }?.record(.nanoseconds(Int64(now) - Int64(scheduled)))
    }

    func ackSummary(_ phase: Int) -> (p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        (state.withLockedValue { $0.phases[phase]?.acks } ?? LatencyRecorder()).summary
    }

    func error(_ text: String) {
        state.withLockedValue { s in
            s.errors += 1
            if s.firstError == nil { s.firstError = text }
        }
    }

    var errors: Int { state.withLockedValue { $0.errors } }
    var firstError: String? { state.withLockedValue { $0.firstError } }
    func delivered(_ phase: Int) -> Int { state.withLockedValue { $0.phases[phase]?.delivered ?? 0 } }
    /// Seconds from the first to the last delivery of the phase.
    func window(_ phase: Int) -> Double {
        state.withLockedValue { s in
            guard let p = s.phases[phase], p.last > p.first else { return 0 }
            return Double(p.last - p.first) / 1e9
        }
    }
    func summary(_ phase: Int) -> (p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        (state.withLockedValue { $0.phases[phase]?.recorder } ?? LatencyRecorder()).summary
    }
}
