/// A match made by the `Matchmaker`. `a` is the client that was queued first (it waited longer), `b` the other one:
/// the newcomer, or the client whose interest wait ran out. `common` lists the shared interests in `b`'s order when
/// the match was made by interest (then `random` is false); a random match has `common == []` and `random == true`.
public struct Pairing: Equatable {
    public let a: PeerID
    public let b: PeerID
    public let common: [String]
    public let random: Bool
}
