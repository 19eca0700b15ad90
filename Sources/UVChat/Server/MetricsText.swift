#if canImport(Glibc)
import Glibc
#endif

/// Renders the counters in the Prometheus text exposition format 0.0.4.
enum MetricsText {
    /// What the moderation memory holds and has done (B.5).
    struct ModerationFigures {
        var identities = 0
        var blocks = 0
        var activeBans = 0
        var bansTotal: UInt64 = 0
        var quarantinesTotal: UInt64 = 0
    }

    static func render(_ m: Metrics, io: IOCounters, chat: ChatCounters, states: [(String, Int)], away: Int = 0,
                       moderation: ModerationFigures = ModerationFigures(), draining: Bool) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples {
                out += labels.isEmpty ? "\(name) \(value)\n" : "\(name){\(labels)} \(value)\n"
            }
        }
        func counter(_ name: String, _ help: String, _ v: UInt64) { metric(name, "counter", help, [("", String(v))]) }

        metric("uvchat_connections", "gauge", "Open connections by state.",
               states.map { ("state=\"\($0.0)\"", String($0.1)) })
        metric("uvchat_draining", "gauge", "1 while the server drains for shutdown.", [("", draining ? "1" : "0")])
        counter("uvchat_connections_accepted_total", "TCP connections accepted.", io.accepted)
        counter("uvchat_accept_errors_total", "Failed accepts (for example out of file descriptors).", io.acceptErrors)
        counter("uvchat_descriptor_limit_hits_total", "Connections dropped at accept because no file descriptor was left (RLIMIT_NOFILE).", io.descriptorLimitHits)
        counter("uvchat_read_errors_total", "Socket read errors other than EOF.", io.readErrors)
        counter("uvchat_write_errors_total", "Socket write errors.", io.writeErrors)
        counter("uvchat_received_bytes_total", "Bytes read from clients.", io.bytesIn)
        counter("uvchat_sent_bytes_total", "Bytes written to clients.", io.bytesOut)
        counter("uvchat_received_frames_total", "WebSocket data messages received.", m.framesIn)
        counter("uvchat_sent_frames_total", "WebSocket frames queued for clients.", m.framesOut)
        metric("uvchat_upgrades_total", "counter", "WebSocket upgrades accepted, by endpoint.",
               [("endpoint=\"ws\"", String(m.chatUpgrades)), ("endpoint=\"echo\"", String(m.echoUpgrades))])
        metric("uvchat_chat_upgrades_by_version_total", "counter", "Chat upgrades (/ws), by protocol version.",
               [("version=\"1\"", String(m.chatUpgrades &- m.chatUpgradesV2)), ("version=\"2\"", String(m.chatUpgradesV2))])
        counter("uvchat_http_requests_total", "HTTP requests parsed.", m.httpRequests)
        counter("uvchat_http_not_found_total", "Static requests answered 404.", m.httpNotFound)
        counter("uvchat_http_errors_total", "HTTP requests answered with an error status.", m.httpErrors)
        counter("uvchat_handshake_rejected_total", "WebSocket upgrades refused.", m.handshakeRejected)
        counter("uvchat_handshake_timeouts_total", "Connections closed for not finishing a request head in time.", m.handshakeTimeouts)
        counter("uvchat_origin_rejected_total", "Upgrades refused by the Origin allow-list.", m.originRejected)
        counter("uvchat_capacity_rejected_total", "Connections refused by a connection cap (upgrades, and HTTP connections over the per-address cap).", m.capacityRejected)
        counter("uvchat_pairs_total", "Pairs made.", chat.pairsMade)
        counter("uvchat_messages_relayed_total", "Chat messages relayed to a partner.", chat.messagesRelayed)
        metric("uvchat_messages_refused_total", "counter", "Chat commands refused, by error code.",
               ChatErrorCode.allCases.map { ("code=\"\($0.wireName)\"", String(chat.refused[$0.index])) })
        counter("uvchat_rate_limit_hits_total", "Messages refused by a rate limit.", chat.rateLimitHits)
        counter("uvchat_slow_consumer_closes_total", "Receivers closed for falling behind the outgoing cap.", chat.slowConsumerCloses)
        metric("uvchat_away_sides", "gauge", "Version 2 chat sides away now, held for a resume.", [("", String(away))])
        counter("uvchat_drops_total", "Version 2 clients that dropped out of a chat and were held for a resume.", chat.drops)
        counter("uvchat_resumes_total", "Chats resumed on a new connection.", chat.resumes)
        counter("uvchat_resume_failures_total", "Resume attempts refused (resume_failed).", chat.resumeFailures)
        counter("uvchat_grace_expired_total", "Held chats ended because the grace period ran out.", chat.graceExpired)
        counter("uvchat_messages_kept_total", "Messages kept for an away partner.", chat.messagesKept)
        counter("uvchat_messages_replayed_total", "Messages sent again after a resume.", chat.messagesReplayed)
        counter("uvchat_replay_full_refusals_total", "Messages refused because the connected receiver had not acknowledged 64 messages or 64 KiB.", chat.ringFullRefusals)
        counter("uvchat_image_offers_total", "Image offers forwarded to the partner (version 2).", chat.imageOffers)
        counter("uvchat_image_accepts_total", "Image offers accepted by the receiver.", chat.imageAccepts)
        counter("uvchat_image_declines_total", "Image offers declined by the receiver.", chat.imageDeclines)
        counter("uvchat_images_relayed_total", "Images checked, cleaned and sent to the receiver.", chat.imagesRelayed)
        counter("uvchat_image_bytes_relayed_total", "Bytes of cleaned images sent to receivers.", chat.imageBytesRelayed)
        counter("uvchat_image_metadata_bytes_removed_total", "Bytes the image cleaner removed (metadata and data after the image).", chat.imageBytesRemoved)
        counter("uvchat_calls_requested_total", "Call requests that rang the partner (version 2), and those declined for a version 1 partner.", chat.callsRequested)
        counter("uvchat_calls_accepted_total", "Call requests the partner accepted.", chat.callsAccepted)
        counter("uvchat_calls_declined_total", "Call requests declined (by the partner, or by the server for a version 1 partner).", chat.callsDeclined)
        counter("uvchat_calls_started_total", "Calls started (start sent to both sides).", chat.callsStarted)
        counter("uvchat_calls_ended_total", "Ringing or started calls that ended (hang-up, the chat's end, a dropped connection).", chat.callsEnded)
        counter("uvchat_signals_relayed_total", "WebRTC signals (SDP, ICE candidates) relayed to the partner.", chat.signalsRelayed)
        counter("uvchat_signal_bytes_relayed_total", "Bytes of signal data relayed.", chat.signalBytesRelayed)
        metric("uvchat_reports_total", "counter", "Reports accepted (version 2), by reason.",
               ReportReason.allCases.map { ("reason=\"\($0.wireName)\"", String(chat.reports[$0.rawValue])) })
        counter("uvchat_blocks_total", "Blocks accepted (version 2).", chat.blocks)
        counter("uvchat_bans_total", "Identities banned after reports from enough different people.", moderation.bansTotal)
        counter("uvchat_ban_rejections_total", "Upgrades refused with 403 because the identity is banned.", m.banRejections)
        counter("uvchat_ban_closes_total", "Open connections closed with 1008 when their identity was banned.", m.banCloses)
        counter("uvchat_quarantines_total", "Identities put into quarantine by their abuse score.", moderation.quarantinesTotal)
        metric("uvchat_auth_rejections_total", "counter", "Upgrades refused with 401, by reason.",
               [("reason=\"missing\"", String(m.authMissing)), ("reason=\"invalid\"", String(m.authInvalid))])
        counter("uvchat_identities_issued_total", "New identity cookies given to browsers.", m.identitiesIssued)
        metric("uvchat_moderation_identities", "gauge", "Identities the moderation memory holds (keyed hashes and times).",
               [("", String(moderation.identities))])
        metric("uvchat_moderation_blocks", "gauge", "Blocks the moderation memory holds.", [("", String(moderation.blocks))])
        metric("uvchat_bans_active", "gauge", "Bans in force.", [("", String(moderation.activeBans))])
        counter("uvchat_idle_timeouts_total", "WebSockets closed for not answering pings.", m.idleTimeouts)
        counter("uvchat_protocol_failures_total", "WebSockets failed for protocol violations.", m.protocolFailures)
        metric("uvchat_close_codes_sent_total", "counter",
               "Close frames sent, by code; the application range 3000-4999 is one label.",
               m.closeSent.samples.map { ("code=\"\($0.label)\"", String($0.value)) })
        metric("uvchat_close_codes_received_total", "counter",
               "Close frames received, by code; the application range 3000-4999 is one label.",
               m.closeReceived.samples.map { ("code=\"\($0.label)\"", String($0.value)) })

        out += "# HELP uvchat_loop_lag_seconds How late a periodic loop timer fired.\n# TYPE uvchat_loop_lag_seconds histogram\n"
        var cumulative: UInt64 = 0
        for (i, bound) in Metrics.lagBuckets.enumerated() {
            cumulative &+= m.lagCounts[i]
            out += "uvchat_loop_lag_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative &+= m.lagCounts[Metrics.lagBuckets.count]
        out += "uvchat_loop_lag_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        out += "uvchat_loop_lag_seconds_sum \(m.lagSum)\nuvchat_loop_lag_seconds_count \(m.lagCount)\n"

        let (rss, fds) = processStats()
        metric("process_resident_memory_bytes", "gauge", "Resident set size.", [("", String(rss))])
        metric("process_open_fds", "gauge", "Open file descriptors.", [("", String(fds))])
        metric("uvchat_build_info", "gauge", "Build information.", [("version=\"\(BuildInfo.version)\"", "1")])
        return out
    }

    /// RSS from /proc/self/statm, and the number of open descriptors as the size `stat` gives /proc/self/fd
    /// (Linux 6.2 and later count the open descriptors there, without listing them). Older kernels report 0, and
    /// the directory is listed instead; `MetricsCache` keeps that to once per second however often /metrics is asked.
    static func processStats() -> (Int, Int) {
        var rss = 0
        let fd = open("/proc/self/statm", O_RDONLY)
        if fd >= 0 {
            var buf = [UInt8](repeating: 0, count: 128)
            let n = read(fd, &buf, buf.count)
            close(fd)
            if n > 0 {
                let fields = buf[0..<n].split(separator: UInt8(ascii: " "))
                if fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) {
                    rss = pages * Int(sysconf(Int32(_SC_PAGESIZE)))
                }
            }
        }
        var info = stat()
        if stat("/proc/self/fd", &info) == 0 && info.st_size > 0 { return (rss, Int(info.st_size)) }
        var fds = 0
        if let dir = opendir("/proc/self/fd") {
            while readdir(dir) != nil { fds += 1 }
            closedir(dir)
            fds = max(0, fds - 3)   // ".", "..", and the directory's own descriptor
        }
        return (rss, fds)
    }
}

public enum BuildInfo {
    public static let version = "0.10.0"
}
