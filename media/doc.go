// Package media is Parley's SFU (selective forwarding unit) for meetings
// and calls, on pion/webrtc and pion/interceptor.
//
// Each participant sends its audio and video to the SFU once; the SFU
// forwards every track to everyone else in the room without decoding it,
// choosing per receiver among the sender's simulcast layers to fit the
// receiver's bandwidth and the size it displays the video at.
//
// # Quick start
//
//	sfu, err := media.New(media.Config{
//		Authorizer: media.AuthorizerFunc(func(ctx context.Context, cred string) (media.Grant, error) {
//			// Check cred (a join token from package meeting, say).
//			return media.Grant{Room: "standup", Participant: "alice@example.com", Name: "Alice"}, nil
//		}),
//		PublicIPs: []string{"203.0.113.7"}, // if behind a 1:1 NAT
//	})
//	if err != nil { ... }
//	defer sfu.Close()
//	mux.Handle("/meet/signal", sfu.Handler())
//
// and open UDP port 7882 (Config.UDPAddr) in the firewall. Browsers connect
// to the handler with a WebSocket and speak the JSON protocol in
// SIGNALLING.md.
//
// # How it fits together
//
//   - Signalling: one WebSocket per participant (coder/websocket), JSON
//     messages. Two PeerConnections per participant: "pub", on which the
//     client offers what it sends (its first offer and any later one, such
//     as adding a screen share), and "sub", on which the SFU offers what the
//     client receives whenever tracks come and go. Each side only offers on
//     its own connection, so offers never cross and glare cannot happen;
//     the SFU keeps one offer in flight and coalesces changes meanwhile.
//     ICE candidates trickle both ways. A client whose network changed
//     restarts ICE on both connections without rejoining (iceRestart).
//   - Authorisation: the first message carries a credential; the host's
//     Authorizer turns it into a Grant (room, participant, name, Role,
//     Limits). Package meeting plugs in here, and listens to the room
//     events through Config.OnEvent.
//   - Forwarding: each incoming stream has a reader goroutine that stores
//     every packet once in a per-stream cache and offers it to each
//     subscriber's bounded queue without blocking. Each subscriber has one
//     writer goroutine that rewrites the header (SSRC, payload type, and
//     sequence numbers and timestamps that stay continuous across layer
//     switches and mutes; for VP8 also the picture ID and TL0PICIDX) and
//     writes through pion's interceptors. A slow
//     subscriber loses packets, which it NACKs (answered from the cache)
//     and, failing that, gets a keyframe; it never slows anyone else.
//   - Keyframes: a new subscriber, a layer switch, a resume after a mute
//     and a subscriber's own PLI all ask the publisher for a keyframe (PLI),
//     at most once per Config.KeyframeInterval per stream.
//   - Simulcast: up to three layers (rids q, h, f). Twice a second each
//     subscriber's layers are chosen to fit the bandwidth estimated by
//     pion's send-side congestion controller (GCC over transport-wide CC
//     feedback), screen shares first, then the active speaker, capped by
//     the display size the subscriber reports. A subscriber that loses
//     no packets keeps at least Config.LosslessBitrate: pion's
//     delay-based estimate alone reads a busy CPU as a full link.
//   - Audio levels (RFC 6464) drive an active-speaker event.
//   - Moderators (and the host, through SFU methods) can mute a
//     participant's mic, stop their video, remove them, and record.
//   - Recording writes one WebM file per participant (Opus and VP8/VP9)
//     and one per screen share, to the host's RecordingSink.
//   - Network: one UDP port for everyone (ICE UDP mux) by default, or a
//     port range; optional ICE over TCP on one port; public addresses for
//     1:1 NAT; STUN/TURN servers handed to clients, with TURN REST
//     credentials that expire.
//
// Nothing is package-level: two SFUs run side by side in one process.
package media
