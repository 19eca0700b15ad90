import CLibUV

/// A libuv error code with its symbolic name and message, in the manner of swift-system's `Errno`.
struct UVError: Error, Equatable, CustomStringConvertible {
    let code: Int32

    init(_ code: Int32) { self.code = code }

    var name: String { String(cString: uv_err_name(code)) }
    var message: String { String(cString: uv_strerror(code)) }
    var description: String { "\(name): \(message)" }

    static let eof = UVError(Int32(UV_EOF.rawValue))
    static let canceled = UVError(Int32(UV_ECANCELED.rawValue))
    static let again = UVError(Int32(UV_EAGAIN.rawValue))
    static let addressInUse = UVError(Int32(UV_EADDRINUSE.rawValue))
    static let tooManyOpenFiles = UVError(Int32(UV_EMFILE.rawValue))
    static let tooManyOpenFilesSystem = UVError(Int32(UV_ENFILE.rawValue))
    static let connectionAborted = UVError(Int32(UV_ECONNABORTED.rawValue))
    static let noBufferSpace = UVError(Int32(UV_ENOBUFS.rawValue))
    static let outOfMemory = UVError(Int32(UV_ENOMEM.rawValue))

    /// Turns a libuv return value into a thrown error when it is negative.
    @discardableResult
    static func check(_ rc: Int32) throws(UVError) -> Int32 {
        if rc < 0 { throw UVError(rc) }
        return rc
    }
}

/// A readable start-up failure (one line for the operator), such as a port already in use.
public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ text: String) { description = text }
}
