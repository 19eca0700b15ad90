/// A file under `www` that was not loaded, and why, for the start-up and reload log.
struct StaticSkippedFile: CustomStringConvertible {
    enum Reason: Equatable {
        case tooLarge(bytes: Int)
        case overTotalLimit
        case tooManyFiles
        /// A symlink whose target leaves the folder: serving it could expose anything on the machine.
        case outsideRoot
        case brokenLink
        /// A visible symlink to a hidden file or into a hidden folder.
        case linksToHidden
        /// A FIFO, socket or device: reading one could block or never end.
        case notRegular
        case unreadable(errno: Int32)
        /// Not UTF-8, or holding a character no request path may contain, so no request could name it.
        case unservableName
        case tooDeep
        case symlinkLoop
    }

    /// The key it would have had, such as "/big/video.mp4".
    let path: String
    let reason: Reason

    var description: String {
        switch reason {
        case .tooLarge(let bytes): "\(path): \(bytes) bytes is over the per-file limit"
        case .overTotalLimit: "\(path): over the total size limit"
        case .tooManyFiles: "\(path): over the file count limit"
        case .outsideRoot: "\(path): symlink leaves the www folder"
        case .brokenLink: "\(path): broken symlink"
        case .linksToHidden: "\(path): symlink to a hidden file"
        case .notRegular: "\(path): not a regular file"
        case .unreadable(let code): "\(path): unreadable (errno \(code))"
        case .unservableName: "\(path): name cannot be requested"
        case .tooDeep: "\(path): folder nesting too deep"
        case .symlinkLoop: "\(path): symlink loop"
        }
    }
}
