import Benchmark
import UVChat
import UVChatBenchSupport

// `UTF8Validator` alone, one whole text message per unit of work (1000 per measured iteration), the way the parser
// checks a message that arrives in one frame: a fresh validator, `validate`, then `isComplete`.
// - 100 B ASCII: the common chat line (the word-at-a-time fast path);
// - 100 B mixed: Cyrillic (2-byte) and emoji (4-byte) with ASCII spaces, the byte-by-byte path;
// - 16 KiB ASCII and 16 KiB mixed: the largest message `/ws` accepts (ServerConfiguration.maxMessageBytes).

let benchmarks: @Sendable () -> Void = {
    let inputs: [(String, [UInt8])] = [
        ("ascii 100B", Fixtures.asciiText(bytes: 100)),
        ("mixed 100B", Fixtures.mixedText(bytes: 100)),
        ("ascii 16KiB", Fixtures.asciiText(bytes: 16 * 1024)),
        ("mixed 16KiB", Fixtures.mixedText(bytes: 16 * 1024)),
    ]
    for (name, text) in inputs {
        precondition(String(validating: text, as: UTF8.self) != nil)
        Benchmark("validate \(name)", configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, buffer: ByteBuffer) in
            let bytes = buffer.raw
            for _ in benchmark.scaledIterations {
                var validator = UTF8Validator()
                // identity: the input is opaque to the optimizer, so the check cannot be hoisted out of the loop.
                let ok = validator.validate(identity(bytes)) && validator.isComplete
                blackHole(ok)
            }
        } setup: {
            let buffer = ByteBuffer(text)
            var validator = UTF8Validator()
            guard validator.validate(buffer.raw), validator.isComplete else { fatalError("fixture \(name) refused") }
            return buffer
        }
    }
}
