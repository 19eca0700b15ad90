#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the `www` tree into memory. Runs before the loop starts and on reload, so blocking reads are fine here
/// and nowhere else. Every path handed to `open` has had its symlinks resolved and checked, and is opened with
/// O_NOFOLLOW, so a link swapped in while loading is refused instead of followed.
struct StaticFilesLoader {
    let limits: StaticFiles.Limits
    private(set) var files: [String: StaticFile] = [:]
    private(set) var skipped: [StaticSkippedFile] = []
    private(set) var totalBytes = 0
    let loadedAt = Int(time(nil))
    private var realRoot: [UInt8] = []
    /// The folders being walked, by identity: a symlink to one of them would recurse forever. Only the current
    /// chain counts, so two links to the same folder elsewhere still both work.
    private var walking: [(dev: UInt64, ino: UInt64)] = []

    init(limits: StaticFiles.Limits) { self.limits = limits }

    mutating func load(root: String) throws {
        guard let real = Self.realPath(root) else {
            throw StaticFilesError.rootUnavailable(path: root, errno: errno)
        }
        let fd = open(real, O_RDONLY | O_CLOEXEC | O_DIRECTORY)
        guard fd >= 0 else {
            let code = errno
            if code == ENOTDIR { throw StaticFilesError.rootNotADirectory(path: root) }
            throw StaticFilesError.rootUnavailable(path: root, errno: code)
        }
        realRoot = Array(real.utf8)
        walk(directoryFD: fd, path: real, key: "", depth: 0)
    }

    /// Takes ownership of `directoryFD`.
    private mutating func walk(directoryFD fd: Int32, path: String, key: String, depth: Int) {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            skip(key, .unreadable(errno: errno))
            close(fd)
            return
        }
        let identity = (dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
        if walking.contains(where: { $0.dev == identity.dev && $0.ino == identity.ino }) {
            skip(key, .symlinkLoop)
            close(fd)
            return
        }
        guard let dir = fdopendir(fd) else {
            skip(key, .unreadable(errno: errno))
            close(fd)
            return
        }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            // Hidden files (and "." and ".."): dot files are often secrets, such as .env or .git.
            if name.first != UInt8(ascii: ".") { names.append(name) }
        }
        // Closed before descending, so deep trees do not pile up descriptors.
        closedir(dir)
        // Sorted, so that which files the limits leave out does not depend on the order on disk.
        names.sort { $0.lexicographicallyPrecedes($1) }

        walking.append(identity)
        defer { walking.removeLast() }
        for nameBytes in names {
            guard let name = String(validating: nameBytes, as: UTF8.self),
                  !nameBytes.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\\") })
            else {
                skip(key + "/" + String(decoding: nameBytes, as: UTF8.self), .unservableName)
                continue
            }
            visit(path: path + "/" + name, key: key + "/" + name, name: name, depth: depth)
        }
    }

    private mutating func visit(path: String, key: String, name: String, depth: Int) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return skip(key, .unreadable(errno: errno)) }
        var target = path
        if st.st_mode & S_IFMT == S_IFLNK {
            guard let real = Self.realPath(path) else { return skip(key, .brokenLink) }
            guard isInsideRoot(real) else { return skip(key, .outsideRoot) }
            guard !isHiddenBelowRoot(real) else { return skip(key, .linksToHidden) }
            guard stat(real, &st) == 0 else { return skip(key, .brokenLink) }
            target = real
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            guard depth < limits.maxDepth else { return skip(key, .tooDeep) }
            let fd = open(target, O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW)
            guard fd >= 0 else { return skip(key, .unreadable(errno: errno)) }
            walk(directoryFD: fd, path: target, key: key, depth: depth + 1)
        case S_IFREG:
            addFile(path: target, key: key, name: name)
        default:
            skip(key, .notRegular)
        }
    }

    private mutating func addFile(path: String, key: String, name: String) {
        guard files.count < limits.maxFiles else { return skip(key, .tooManyFiles) }
        // O_NONBLOCK: if the file became a FIFO since lstat, opening it must not wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return skip(key, .unreadable(errno: errno)) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return skip(key, .unreadable(errno: errno)) }
        guard st.st_mode & S_IFMT == S_IFREG else { return skip(key, .notRegular) }
        let size = Int(st.st_size)
        guard size <= limits.maxFileBytes else { return skip(key, .tooLarge(bytes: size)) }
        guard totalBytes + size <= limits.maxTotalBytes else { return skip(key, .overTotalLimit) }
        var body = [UInt8](repeating: 0, count: size)
        var filled = 0
        while filled < size {
            let n = body.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, size - filled) }
            if n > 0 {
                filled += n
            } else if n == 0 {
                break   // shrank while loading: serve what is there; the ETag follows the bytes
            } else if errno != EINTR {
                return skip(key, .unreadable(errno: errno))
            }
        }
        if filled < size { body.removeSubrange(filled...) }
        #if canImport(Glibc)
        let mtime = Int(st.st_mtim.tv_sec)
        #else
        let mtime = Int(st.st_mtimespec.tv_sec)
        #endif
        // RFC 9110 section 8.8.2.1: a Last-Modified in the future (a skewed clock, a copied tree) must not be sent.
        let lastModified = max(0, min(mtime, loadedAt))
        files[key] = StaticFile(name: name, body: body, lastModified: lastModified)
        totalBytes += body.count
    }

    /// Compared as bytes with a separator after the root, so "/srv/www2" is not inside "/srv/www".
    private func isInsideRoot(_ real: String) -> Bool {
        let r = real.utf8
        guard r.starts(with: realRoot) else { return false }
        if r.count == realRoot.count || realRoot == [UInt8(ascii: "/")] { return true }
        return r.dropFirst(realRoot.count).first == UInt8(ascii: "/")
    }

    /// A visible link must not publish what the hidden-file rule keeps back, such as `.git/config`.
    private func isHiddenBelowRoot(_ real: String) -> Bool {
        real.utf8.dropFirst(realRoot.count).split(separator: UInt8(ascii: "/")).contains { $0.first == UInt8(ascii: ".") }
    }

    private mutating func skip(_ key: String, _ reason: StaticSkippedFile.Reason) {
        skipped.append(StaticSkippedFile(path: key.isEmpty ? "/" : key, reason: reason))
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
