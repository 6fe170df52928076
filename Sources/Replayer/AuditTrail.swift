import EventLog
import Events
import Foundation

/// The history of a room or a user as a person reads it: when, who, what, with the
/// before and after of every edit and what a deletion removed. Pure: built from logged
/// events and the usernames the log registered. Secrets (password hashes) never appear.
struct AuditTrail {
    /// One line of the trail.
    struct Entry: Sendable, Equatable {
        var partition: Int
        var entryID: String
        var at: Date
        var type: String
        var actorId: String
        var actor: String
        var roomId: String?
        var seq: Int64?
        /// What happened, in words.
        var summary: String
        /// The event's data without secrets, as JSON text.
        var data: String
        /// For an edit, the body it replaced; for a deletion, the body deleted.
        var previousBody: String?
        var hash: String?

        var position: String { "\(partition):\(entryID)" }
    }

    private(set) var entries: [Entry] = []
    private var usernames: [String: String]
    private var bodies: [String: (body: String, by: String)] = [:]
    /// Each message's seq, for lines about it ("pinned bob's message 12").
    private var seqs: [String: Int64] = [:]
    private var roomNames: [String: String] = [:]

    init(usernames: [String: String]) {
        self.usernames = usernames
    }

    /// Sorts the entries with `before`.
    mutating func reorder(by before: (Entry, Entry) -> Bool) {
        entries.sort(by: before)
    }

    func name(_ userId: String) -> String { usernames[userId] ?? userId }

    /// "bob's message 12" for a message the trail has seen sent, else its id.
    func message(_ messageId: String) -> String {
        guard let sender = bodies[messageId]?.by, let seq = seqs[messageId] else { return "message \(messageId)" }
        return "\(name(sender))'s message \(seq)"
    }

    /// Adds `logged` when `include` says so; every event still updates what the trail
    /// knows (bodies, room names), so later entries read right.
    mutating func add(_ logged: LoggedEvent, include: Bool) {
        let event = logged.event
        if case .userRegistered(let user) = event.data { usernames[user.userId] = user.username }
        var previous: String?
        let summary: String
        switch event.data {
        case .userRegistered(let user):
            summary = "registered as \(quoted(user.username)) (display name \(quoted(user.displayName)))"
        case .roomCreated(let created):
            if created.kind == .group {
                summary = "created group \(quoted(created.name ?? ""))"
                roomNames[event.roomId ?? ""] = created.name
            } else {
                summary = "direct room of " + (created.members ?? []).map(name).joined(separator: " and ")
            }
        case .memberInvited(let m): summary = "invited \(name(m.userId)) as \((m.role ?? .member).rawValue)"
        case .inviteDeclined(let m): summary = "\(name(m.userId)) declined the invite"
        case .memberJoined(let m): summary = "\(name(m.userId)) joined as \((m.role ?? .member).rawValue)"
        case .memberLeft(let m): summary = "\(name(m.userId)) left"
        case .memberRemoved(let m): summary = "removed \(name(m.userId))"
        case .memberRoleChanged(let m): summary = "\(name(m.userId)) is now \((m.role ?? .member).rawValue)"
        case .roomRenamed(let renamed):
            let old = roomNames[event.roomId ?? ""]
            summary = "renamed " + (old.map { "\(quoted($0)) → " } ?? "to ") + quoted(renamed.name)
            roomNames[event.roomId ?? ""] = renamed.name
        case .messageSent(let sent):
            summary =
                "message \(sent.messageId): \(quoted(sent.body))" + (sent.replyTo.map { " (reply to \($0))" } ?? "")
                + (sent.threadRootId.map { " in the thread of \(message($0))" } ?? "")
                + (sent.mentions.map { " mentioning " + $0.map(name).joined(separator: ", ") } ?? "")
            bodies[sent.messageId] = (sent.body, event.actorId)
            seqs[sent.messageId] = event.seq
        case .messageEdited(let edited):
            previous = bodies[edited.messageId]?.body
            summary = "edited \(edited.messageId): " + (previous.map { "\(quoted($0)) → " } ?? "") + quoted(edited.body)
            bodies[edited.messageId]?.body = edited.body
        case .messageDeleted(let deleted):
            let was = bodies[deleted.messageId]
            previous = was?.body
            summary = "deleted \(deleted.messageId)" + (was.map { " (sent by \(name($0.by)): \(quoted($0.body)))" } ?? "")
        case .roomRead(let read): summary = "read up to seq \(read.seq)"
        case .reactionAdded(let reaction): summary = "reacted \(quoted(reaction.emoji)) to \(message(reaction.messageId))"
        case .reactionRemoved(let reaction): summary = "took back \(quoted(reaction.emoji)) from \(message(reaction.messageId))"
        case .messagePinned(let pin): summary = "pinned \(message(pin.messageId))"
        case .messageUnpinned(let pin): summary = "unpinned \(message(pin.messageId))"
        case .memberBanned(let m): summary = "banned \(name(m.userId))" + (m.reason.map { ": \($0)" } ?? "")
        case .memberUnbanned(let m): summary = "unbanned \(name(m.userId))"
        case .memberMuted(let m): summary = "muted \(name(m.userId))" + (m.until.map { " until \(Self.time($0))" } ?? "")
        case .memberUnmuted(let m): summary = "unmuted \(name(m.userId))"
        case .userBlocked(let block): summary = "blocked \(name(block.userId))"
        case .userUnblocked(let block): summary = "unblocked \(name(block.userId))"
        }
        guard include else { return }
        entries.append(
            Entry(
                partition: logged.partition, entryID: logged.entryID, at: event.at, type: event.type.rawValue, actorId: event.actorId,
                actor: name(event.actorId), roomId: event.roomId, seq: event.type == .messageSent ? event.seq : nil, summary: summary,
                data: Self.publicData(of: logged), previousBody: previous, hash: event.hash))
    }

    /// The event's `data` as JSON text, without the password hash of `user.registered`.
    static func publicData(of logged: LoggedEvent) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(logged.json.utf8)) as? [String: Any],
            var data = object["data"] as? [String: Any]
        else { return "{}" }
        data["passwordHash"] = nil
        return json(data)
    }

    static func json(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A string as JSON writes it: quoted, with newlines and quotes escaped.
    func quoted(_ text: String) -> String {
        Self.json([text]).dropFirst().dropLast().description
    }

    // MARK: - Output

    /// The trail as a table; `withRoom` adds the room column (a user's trail spans rooms).
    func table(withRoom: Bool) -> String {
        var header = ["time (UTC)", "position"]
        if withRoom { header.append("room") }
        header += ["seq", "who", "what"]
        let rows = entries.map { e -> [String] in
            var row = [Self.time(e.at), e.position]
            if withRoom { row.append(e.roomId ?? "-") }
            row += [e.seq.map(String.init) ?? "", e.actor, e.summary]
            return row
        }
        return Table(header, rows).text
    }

    /// One JSON object per entry, one per line.
    func jsonLines() -> [String] {
        entries.map { e in
            var object: [String: Any] = [
                "position": e.position, "partition": e.partition, "entryId": e.entryID, "at": formatTimestamp(e.at), "type": e.type,
                "actorId": e.actorId, "actor": e.actor, "summary": e.summary,
                "data": (try? JSONSerialization.jsonObject(with: Data(e.data.utf8))) ?? [:],
            ]
            if let room = e.roomId { object["roomId"] = room }
            if let seq = e.seq { object["seq"] = seq }
            if let previous = e.previousBody { object["previousBody"] = previous }
            if let hash = e.hash { object["hash"] = hash }
            return Self.json(object)
        }
    }

    static func time(_ date: Date) -> String {
        formatTimestamp(date).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
    }
}
