/// Caps on an unfinished request head, checked while it arrives so a slow or hostile client cannot make us buffer
/// more than `maxHeadBytes` per connection.
struct HTTPLimits {
    var maxHeadBytes = 16 * 1024
    var maxTargetBytes = 8 * 1024
    var maxHeaderCount = 100
}
