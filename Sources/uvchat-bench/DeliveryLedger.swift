/// Checks what the server delivered against what was sent: every receiver must hear one sender (its partner)
/// with sequence numbers 1, 2, 3, ... and nothing else; what was sent and never arrived is loss.
struct DeliveryLedger {
    private(set) var delivered = 0
    private(set) var outOfOrder = 0
    private(set) var wrongPartner = 0
    private(set) var malformed = 0
    private(set) var serverErrors = 0
    private(set) var partnerLeft = 0

    /// The sender's fields when the message is one of ours, after checking it against `receiver`'s history.
    mutating func receive(_ json: UnsafeRawBufferPointer, by receiver: BenchClient, senders: Int) -> ChatPayload.Fields? {
        guard let text = ServerEvent.text(of: json), let fields = ChatPayload.fields(of: text),
              fields.sender < senders, fields.sender != receiver.index else {
            malformed += 1
            return nil
        }
        if receiver.partner < 0 {
            receiver.partner = fields.sender
        } else if receiver.partner != fields.sender {
            wrongPartner += 1
        }
        if fields.seq != receiver.received + 1 { outOfOrder += 1 }
        receiver.received = fields.seq
        delivered += 1
        return fields
    }

    mutating func other(_ event: ServerEvent) {
        switch event {
        case .error: serverErrors += 1
        case .partnerLeft: partnerLeft += 1
        default: break
        }
    }

    func violations(lost: Int) -> Int { outOfOrder + wrongPartner + malformed + serverErrors + partnerLeft + max(0, lost) }

    func report(into line: inout ResultLine, sent: Int) {
        let lost = sent - delivered
        line.add("sent", sent)
        line.add("lost", lost)
        line.add("out_of_order", outOfOrder)
        line.add("wrong_partner", wrongPartner)
        line.add("server_errors", serverErrors + malformed)
        line.add("partner_left", partnerLeft)
        line.add("violations", violations(lost: lost))
    }
}
