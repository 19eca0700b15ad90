/// Where two browsers find a way to each other for a call (PROTOCOL.md B.4): STUN servers, TURN servers with
/// short-lived credentials, and the transport policy, as the JSON object a page hands to `RTCPeerConnection`.
/// uvchatd only writes this object; media flows between the browsers or through the TURN server.
public struct ICESettings: Sendable {
    /// `stun:` or `stuns:` URLs; together they make one `iceServers` entry.
    public var stunURLs: [String] = []
    /// `turn:` or `turns:` URLs of one TURN service (one shared secret); one entry with a credential.
    public var turnURLs: [String] = []
    /// coturn's `static-auth-secret`, read from a file by the daemon.
    public var turnSecret = Secret()
    /// How long a TURN credential is good for.
    public var credentialSeconds = 600
    /// `iceTransportPolicy` `relay`: media only through TURN, so that neither side learns the other's addresses.
    public var relayOnly = false

    public init() {}

    /// What is wrong with these settings, for the daemon to refuse to start; nil when they are usable.
    public var problem: String? {
        for url in stunURLs where !ICESettings.isURL(url, schemes: ["stun:", "stuns:"]) {
            return "--stun-url must be a stun: or stuns: URL of printable ASCII without spaces, quotes or backslashes"
        }
        for url in turnURLs where !ICESettings.isURL(url, schemes: ["turn:", "turns:"]) {
            return "--turn-url must be a turn: or turns: URL of printable ASCII without spaces, quotes or backslashes"
        }
        if !turnURLs.isEmpty && turnSecret.isEmpty { return "--turn-url needs --turn-secret-file (coturn's static-auth-secret)" }
        if turnURLs.isEmpty && !turnSecret.isEmpty { return "--turn-secret-file without a --turn-url" }
        if relayOnly && turnURLs.isEmpty { return "--ice-transport-policy relay needs a --turn-url" }
        if !(60...86_400).contains(credentialSeconds) { return "--turn-credential-seconds must be 60 to 86400" }
        if !turnURLs.isEmpty && !HMAC.isAvailable {
            return "TURN credentials need OpenSSL's libcrypto.so.3 (Debian: libssl3), which could not be loaded"
        }
        return nil
    }

    /// The URL goes into JSON as it is, so it may not need escaping; a scheme check catches a swapped flag.
    static func isURL(_ url: String, schemes: [String]) -> Bool {
        guard schemes.contains(where: { url.hasPrefix($0) && url.utf8.count > $0.utf8.count }) else { return false }
        return url.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }
}

/// Bytes that never print: a `Secret` in a log line, an error or a debugger shows as `(secret)`.
public struct Secret: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    let bytes: [UInt8]

    public init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    public var isEmpty: Bool { bytes.isEmpty }
    public var count: Int { bytes.count }
    /// For a caller that must parse a key file (a PEM public key): the bytes themselves.
    public var bytesForParsing: [UInt8] { bytes }
    public var description: String { "(secret)" }
    public var debugDescription: String { "(secret)" }
}

/// The `ice` object, written at start-up except for each TURN credential: a call's `start` copies the fixed parts
/// around a fresh username and credential for each side.
struct ICEServers {
    private let settings: ICESettings
    /// Up to the TURN username's opening quote (or the whole object when there is no TURN server).
    private let head: [UInt8]
    private let tail: [UInt8]

    init(_ settings: ICESettings) {
        self.settings = settings
        var head = Array(#"{"iceServers":["#.utf8)
        if !settings.stunURLs.isEmpty {
            head += Array(#"{"urls":"#.utf8) + ICEServers.list(settings.stunURLs) + [UInt8(ascii: "}")]
        }
        var tail: [UInt8] = []
        if !settings.turnURLs.isEmpty {
            if !settings.stunURLs.isEmpty { head.append(UInt8(ascii: ",")) }
            head += Array(#"{"urls":"#.utf8) + ICEServers.list(settings.turnURLs) + Array(#","username":""#.utf8)
            tail = Array(#""}"#.utf8)
        }
        tail += Array(#"],"iceTransportPolicy":""#.utf8) + Array((settings.relayOnly ? "relay" : "all").utf8)
            + Array(#""}"#.utf8)
        self.head = head
        self.tail = tail
    }

    private static func list(_ urls: [String]) -> [UInt8] {
        Array(("[" + urls.map { "\"" + $0 + "\"" }.joined(separator: ",") + "]").utf8)
    }

    /// The object for one side of one call. `unixTime` is the wall clock in seconds; `random` names the credential
    /// (coturn takes the part after the colon as the user; it is random, so it says nothing about the person).
    func object(unixTime: UInt64, random: UInt64) -> [UInt8] {
        var out = head
        if !settings.turnURLs.isEmpty {
            let username = TURNCredential.username(expiry: unixTime + UInt64(settings.credentialSeconds), random: random)
            out += username
            ChatEventEncoder.append(#"","credential":""#, to: &out)
            out += TURNCredential.password(secret: settings.turnSecret, username: username)
        }
        out += tail
        return out
    }
}

/// coturn's REST API credentials (`use-auth-secret`): the username is `<expiry unix time>:<user>`, the password
/// base64(HMAC-SHA1(static-auth-secret, username)); coturn recomputes it and refuses it after the expiry.
enum TURNCredential {
    static func username(expiry: UInt64, random: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        ChatEventEncoder.appendDecimal(expiry, to: &out)
        out.append(UInt8(ascii: ":"))
        for shift in stride(from: 60, through: 0, by: -4) {
            out.append(HexDigit.lowercase(UInt8((random >> UInt64(shift)) & 0xF)))
        }
        return out
    }

    static func password(secret: Secret, username: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        Base64.encode(HMAC.sha1(key: secret.bytes, message: username), url: false, into: &out)
        return out
    }
}
