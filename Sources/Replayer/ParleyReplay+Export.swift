import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation
import Logging
import Projections

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the log as JSON lines: {partition, entryId, event}, password hashes left out.")
    @Option(help: "The file to write (- for standard output).") var out: String
    @Option(help: "Only this room's events.") var room: String?
    @OptionGroup var run: RunOptions

    func run() async throws {
        try await replay(needs: []) { context in
            let partitions = room.map { [context.log.partitioning.partition(ofRoom: $0)] } ?? Array(0..<context.log.partitioning.count)
            let writer = try LineWriter(path: out)
            let progress = Progress(
                "export", total: room == nil ? try await context.log.reader.length() : nil, interval: run.progressInterval)
            var count = 0
            var read = 0
            do {
                try await forEachEvent(context, partitions: partitions, page: run.batch) { logged in
                    read += 1
                    if read % 5000 == 0 { progress.update(read) }
                    if let room, logged.event.roomId != room { return }
                    try writer.write(ExportLine.json(logged))
                    count += 1
                }
                try writer.close()
            } catch {
                try? writer.close()
                throw error
            }
            FileHandle.standardError.write(
                Data("export: \(Progress.grouped(count)) events written to \(out == "-" ? "standard output" : out)\n".utf8))
            return 0
        }
    }
}

/// One exported event: its place in the log and the event as stored, except that the
/// password hash of `user.registered` is left out (its `hash` then no longer recomputes
/// from the exported text; `parley-replay audit chain` checks the log itself).
enum ExportLine {
    static func json(_ logged: LoggedEvent) -> String {
        var event = logged.json
        if logged.event.type == .userRegistered, var object = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any],
            var data = object["data"] as? [String: Any]
        {
            data["passwordHash"] = nil
            object["data"] = data
            event = AuditTrail.json(object)
        }
        return "{\"partition\":\(logged.partition),\"entryId\":\"\(logged.entryID)\",\"event\":\(event)}"
    }
}

/// Buffered lines to a file or standard output.
final class LineWriter {
    private let handle: FileHandle
    private let closes: Bool
    private var buffer = Data()

    init(path: String) throws {
        if path == "-" {
            handle = .standardOutput
            closes = false
        } else {
            // Opened in place, truncated: `FileManager.createFile` writes a new file and renames it over the path, which
            // replaced a device such as /dev/null with a regular file (as root).
            let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard descriptor >= 0 else {
                throw ReplayConfiguration.Invalid(description: "cannot create \(path): \(String(cString: strerror(errno)))")
            }
            handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
            closes = true
        }
    }

    func write(_ line: String) throws {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count >= 1 << 20 { try flush() }
    }

    func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        if closes { try handle.close() }
    }
}
