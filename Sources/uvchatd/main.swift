import UVChat
#if canImport(Glibc)
import Glibc
#endif

// Declare the flags, read the arguments, then set what they gave; a bad flag is one clear line and exit status 1.
var command = UVChatD()
do {
    var flags = try Flags.declare { f throws(FlagError) in try command.bind(&f) }
    switch try flags.read(CommandLine.arguments.dropFirst()) {
    case .help:
        print(flags.usage(name: "uvchatd", abstract: UVChatD.abstract, discussion: UVChatD.discussion), terminator: "")
        exit(0)
    case .version:
        print(BuildInfo.version)
        exit(0)
    case .run:
        try command.bind(&flags)
    }
    try command.validate()
} catch {
    fail("\(error)")
}
command.run()
