/// What a scenario hears from its clients. Calls arrive from libuv callbacks on the one loop thread.
protocol BenchScenario: AnyObject {
    /// The upgrade succeeded (101 with the expected accept key).
    func clientDidOpen(_ client: BenchClient)
    /// A complete text message from the server.
    func client(_ client: BenchClient, didReceive event: ServerEvent, json: UnsafeRawBufferPointer)
    /// Connect refused, upgrade refused, protocol error, reset, or a close the scenario did not ask for.
    func clientDidFail(_ client: BenchClient, reason: String)
    /// The handle is closed; the client will not call again.
    func clientDidClose(_ client: BenchClient)
}
