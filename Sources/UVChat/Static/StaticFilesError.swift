/// Why the `www` folder could not be loaded at all. Problems with single files do not throw: those files are
/// skipped and listed in `StaticFiles.skipped`, so one bad file cannot keep the chat from starting.
enum StaticFilesError: Error, CustomStringConvertible {
    case rootUnavailable(path: String, errno: Int32)
    case rootNotADirectory(path: String)

    var description: String {
        switch self {
        case .rootUnavailable(let path, let code):
            "cannot open the www folder '\(path)' (errno \(code))"
        case .rootNotADirectory(let path):
            "the www folder '\(path)' is not a directory"
        }
    }
}
