import Foundation

/// Finds a folder of the repository a Parley executable runs from (`migrations`, `web`):
/// the path in `variable` when set, else `./<name>`, else the nearest `<name>` above the
/// running executable (a build under `.build/` of the repository). With `containing`, a
/// candidate counts only if it holds that file.
public func projectDirectory(
    _ name: String, variable: String, containing file: String? = nil,
    environment: [String: String] = ProcessInfo.processInfo.environment
) -> URL? {
    if let explicit = environment[variable] { return URL(fileURLWithPath: explicit) }
    var candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<6 {
        candidates.append(directory)
        directory = directory.deletingLastPathComponent()
    }
    for candidate in candidates {
        let folder = candidate.appendingPathComponent(name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
        if let file, !FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path) { continue }
        return folder
    }
    return nil
}
