/// A match made by the `Matchmaker`. `a` is the client that was queued first (it waited longer), `b` the other one:
/// the newcomer, or the client whose interest wait ran out. `common` lists the shared interests in `b`'s order when
/// the match was made by interest (then `random` is false); a random match has `common == []` and `random == true`.
struct Pairing: Equatable {
    let a: PeerID
    let b: PeerID
    let common: [String]
    let random: Bool
}
