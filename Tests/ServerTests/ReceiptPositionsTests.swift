import Testing

@testable import Server

/// The receipt positions an instance keeps so that a repeated receipt costs no read of the read model.
@Suite("Receipt positions kept in memory")
struct ReceiptPositionsTests {
    @Test func aPositionIsKeptForItsAgeNeverGoesBackAndThenIsForgotten() {
        let positions = ReceiptPositions(maxAge: .seconds(30))
        let t0 = ContinuousClock.now
        #expect(positions.position("ann", "r1", now: t0) == nil)
        positions.learn("ann", "r1", seq: 7, now: t0)
        positions.learn("ann", "r1", seq: 3, now: t0 + .seconds(1))  // an older receipt does not move it back
        #expect(positions.position("ann", "r1", now: t0 + .seconds(2)) == 7)
        #expect(positions.position("ann", "r2", now: t0 + .seconds(2)) == nil)
        #expect(positions.position("bob", "r1", now: t0 + .seconds(2)) == nil)
        // Past its age it is read again from the read model (another instance, a member who left and came back).
        #expect(positions.position("ann", "r1", now: t0 + .seconds(40)) == nil)
        positions.learn("ann", "r1", seq: 2, now: t0 + .seconds(40))
        #expect(positions.position("ann", "r1", now: t0 + .seconds(41)) == 2)
    }

    @Test func theMapIsBounded() {
        let positions = ReceiptPositions(maxAge: .seconds(30), maxEntries: 100)
        let t0 = ContinuousClock.now
        for n in 0..<1000 { positions.learn("user\(n)", "room", seq: Int64(n), now: t0) }
        #expect(positions.count <= 100)
        // Expired entries go first: a newer one is kept.
        for n in 0..<100 { positions.learn("old\(n)", "room", seq: 1, now: t0) }
        positions.learn("fresh", "room", seq: 5, now: t0 + .seconds(60))
        #expect(positions.position("fresh", "room", now: t0 + .seconds(61)) == 5)
        #expect(positions.count <= 100)
    }
}
