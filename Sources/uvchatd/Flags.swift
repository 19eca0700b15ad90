/// The command line, parsed here rather than by swift-argument-parser: that package brings FoundationEssentials into
/// the binary, and its code and tables were 3 of the 11 MB a server held before its first connection (README,
/// Performance). The grammar is the usual one: `--name value`, `--name=value`, bare `--switch`, a repeatable
/// option given once per value, `--help` and `--version`.
///
/// One list declares every flag (`UVChatD.bind`), and it is walked twice: once to learn the names, kinds, help and
/// defaults (`Flags.declare`), then, after `read` has split the arguments, once more to set what they gave.
struct Flags {
    enum Kind { case option, list, flag }

    struct Declared {
        let name: String
        let kind: Kind
        let help: String
        /// The value before the command line changes it, shown by `--help` (nil: none shown).
        let shown: String?
    }

    enum Request: Equatable { case run, help, version }

    private(set) var declared: [Declared] = []
    /// Each value given, in order (flags with an empty value). A list, not a dictionary: hashing Strings would
    /// page in the runtime's Unicode tables for 76 names read once.
    private var given: [(name: String, value: String)] = []
    private var assigning = false

    /// Records what `bind` declares without changing its values.
    static func declare(_ bind: (inout Flags) throws -> Void) rethrows -> Flags {
        var flags = Flags()
        try bind(&flags)
        return flags
    }

    /// Splits the arguments by the declared names. Unknown names, a missing value, a value given to a switch and
    /// bare words are errors.
    mutating func read(_ arguments: some Sequence<String>) throws(FlagError) -> Request {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            if argument == "--help" || argument == "-h" { return .help }
            if argument == "--version" { return .version }
            guard argument.hasPrefix("--"), argument.utf8.count > 2 else {
                throw FlagError("unexpected argument '\(argument)' (see --help)")
            }
            var name = String(argument.dropFirst(2))
            var inline: String?
            if let equals = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let kind = declared.first(where: { $0.name == name })?.kind else {
                throw FlagError("unknown option '--\(name)' (see --help)")
            }
            if kind == .flag {
                guard inline == nil else { throw FlagError("--\(name) takes no value") }
                given.append((name, ""))
                continue
            }
            // The next word is the value, unless it is another flag (`--www --echo` forgot the folder).
            guard let value = inline ?? iterator.next(), inline != nil || !value.hasPrefix("--") else {
                throw FlagError("--\(name) needs a value")
            }
            given.append((name, value))
        }
        assigning = true
        return .run
    }

    mutating func option(_ value: inout Int, _ name: String, _ help: String) throws(FlagError) {
        guard let text = single(name, help, shown: value.description) else { return }
        guard let n = Int(text) else { throw FlagError("--\(name) must be a whole number, not '\(text)'") }
        value = n
    }

    mutating func option(_ value: inout Double, _ name: String, _ help: String) throws(FlagError) {
        guard let text = single(name, help, shown: value.description) else { return }
        // Seconds become nanoseconds in an Int64, so a billion is the most any of these may be.
        guard let d = Double(text), d.isFinite, abs(d) <= 1e9 else {
            throw FlagError("--\(name) must be a number of at most 1e9, not '\(text)'")
        }
        value = d
    }

    mutating func option(_ value: inout String, _ name: String, _ help: String) throws(FlagError) {
        if let text = single(name, help, shown: value) { value = text }
    }

    mutating func option(_ value: inout String?, _ name: String, _ help: String) throws(FlagError) {
        if let text = single(name, help, shown: value) { value = text }
    }

    mutating func option(_ values: inout [String], _ name: String, _ help: String) throws(FlagError) {
        guard assigning else { return declared.append(Declared(name: name, kind: .list, help: help, shown: nil)) }
        let texts = given.filter { $0.name == name }.map(\.value)
        if !texts.isEmpty { values = texts }
    }

    mutating func flag(_ value: inout Bool, _ name: String, _ help: String) throws(FlagError) {
        guard assigning else { return declared.append(Declared(name: name, kind: .flag, help: help, shown: nil)) }
        if given.contains(where: { $0.name == name }) { value = true }
    }

    /// Declaring: records the option and returns nil. Assigning: the last value given for it, if any.
    private mutating func single(_ name: String, _ help: String, shown: String?) -> String? {
        guard assigning else {
            declared.append(Declared(name: name, kind: .option, help: help, shown: shown))
            return nil
        }
        return given.last(where: { $0.name == name })?.value
    }

    /// `--help`: a usage line, then each flag with its help and, for a single-valued option, its default.
    func usage(name: String, abstract: String, discussion: String) -> String {
        var text = "\(abstract)\n\nUSAGE: \(name) [options]\n\n\(discussion)\n\nOPTIONS:\n"
        for d in declared {
            switch d.kind {
            case .flag: text += "  --\(d.name)\n"
            case .option: text += "  --\(d.name) <value>\n"
            case .list: text += "  --\(d.name) <value> (repeatable)\n"
            }
            text += "        \(d.help)"
            if let shown = d.shown, !shown.isEmpty { text += " (default: \(shown))" }
            text += "\n"
        }
        text += "  --version\n        Print the version and exit.\n  -h, --help\n        Print this text and exit.\n"
        return text
    }
}

struct FlagError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
