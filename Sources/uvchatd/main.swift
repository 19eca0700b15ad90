import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

// Parse by hand so that a bad flag gives one clear line instead of the usage text.
do {
    let command = try UVChatD.parseAsRoot()
    var runnable = command
    try runnable.run()
} catch {
    let code = UVChatD.exitCode(for: error)
    if code == .success {
        print(UVChatD.fullMessage(for: error))
        exit(0)
    }
    fail(UVChatD.message(for: error))
}
