/// The wire name of every event type (CONTRACT section 5) and its current schema version.
/// Names are stable forever; a change of shape bumps the version and adds an upcaster.
public enum EventType: String, Codable, Sendable, CaseIterable {
    case userRegistered = "user.registered"
    case roomCreated = "room.created"
    case memberInvited = "member.invited"
    case inviteDeclined = "invite.declined"
    case memberJoined = "member.joined"
    case memberLeft = "member.left"
    case memberRemoved = "member.removed"
    case memberRoleChanged = "member.role_changed"
    case roomRenamed = "room.renamed"
    case messageSent = "message.sent"
    case messageEdited = "message.edited"
    case messageDeleted = "message.deleted"
    case roomRead = "room.read"
    case reactionAdded = "reaction.added"
    case reactionRemoved = "reaction.removed"
    case messagePinned = "message.pinned"
    case messageUnpinned = "message.unpinned"
    case memberBanned = "member.banned"
    case memberUnbanned = "member.unbanned"
    case memberMuted = "member.muted"
    case memberUnmuted = "member.unmuted"
    case userBlocked = "user.blocked"
    case userUnblocked = "user.unblocked"

    /// The version new events of this type are written with.
    public var currentVersion: Int {
        switch self {
        case .userRegistered: return 2  // v2 added displayName (v1 events are upcast)
        default: return 1
        }
    }
}
