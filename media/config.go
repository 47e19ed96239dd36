package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/logging"
)

// Config configures an SFU. The zero value of every field but Authorizer is
// usable and means the default documented on the field.
type Config struct {
	// Authorizer checks join credentials. Required.
	Authorizer Authorizer

	// OnEvent receives room events (joins, leaves, mutes, active speaker,
	// recording) in order on one goroutine. It may be slow without
	// stalling media, but events queue while it runs. Nil: no events.
	OnEvent func(Event)

	// Recording stores recordings. Nil: recording is unavailable even where
	// Limits.Recording allows it.
	Recording RecordingSink

	// UDPConn, if set, is the one UDP socket all peers share (ICE UDP mux).
	// The SFU takes ownership and closes it in Close.
	UDPConn net.PacketConn
	// UDPAddr is where the SFU opens that socket when UDPConn is nil and no
	// port range is set. Default ":7882": one firewall rule (UDP 7882)
	// admits every participant. Use "127.0.0.1:0" in tests.
	//
	// A socket on a loopback address (here, in UDPConn when it is a
	// *net.UDPConn, or in TCPAddr and TCPListener) serves clients on this
	// host over loopback only: packets from and to the host's other
	// addresses are dropped, so a browser on the same host selects its
	// loopback candidate (Chromium gathers one when started with
	// --allow-loopback-in-peer-connection) and media never leaves
	// 127.0.0.0/8 or ::1.
	UDPAddr string
	// UDPPortMin and UDPPortMax, when both set, switch from the single
	// multiplexed port to one ephemeral port per peer from this range.
	UDPPortMin, UDPPortMax uint16

	// TCPListener or TCPAddr enable ICE over TCP (passive, multiplexed on
	// one port) for networks that block UDP. The SFU takes ownership of
	// TCPListener. Default: off.
	TCPListener net.Listener
	TCPAddr     string

	// LoopbackCandidates offers 127.0.0.1 to clients even when the SFU
	// listens on other addresses too: for clients on the same host. It is
	// implied when UDPAddr or UDPConn is a loopback address.
	LoopbackCandidates bool

	// PublicIPs are the addresses clients should use when the host sits
	// behind a 1:1 NAT (a cloud VM with a private address); they replace
	// the private addresses in the host candidates.
	PublicIPs []string

	// ICEServers are handed to clients (STUN, TURN); see ICEServer.
	ICEServers []ICEServer
	// TURNCredentialTTL is how long generated TURN credentials stay valid.
	// Default 12h.
	TURNCredentialTTL time.Duration

	// OriginPatterns are the extra origins (host patterns, as in
	// github.com/coder/websocket AcceptOptions) whose pages may open the
	// signalling WebSocket; same-origin is always allowed.
	OriginPatterns []string

	// Limits are the per-room defaults for fields a Grant leaves zero.
	// Defaults: 100 participants, 100 publishers, 200 Mbit/s.
	Limits Limits

	// JoinTimeout is how long a new WebSocket may take to send its join
	// message. Default 10s.
	JoinTimeout time.Duration
	// PingInterval and PingTimeout detect a vanished WebSocket peer.
	// Defaults 5s and 5s.
	PingInterval, PingTimeout time.Duration
	// ICEDisconnectedTimeout and ICEFailedTimeout detect vanished media:
	// a participant whose PeerConnections hear nothing for their sum is
	// removed. Defaults 3s and 4s.
	ICEDisconnectedTimeout, ICEFailedTimeout time.Duration

	// KeyframeInterval is the shortest time between two keyframe requests
	// (PLI) sent to one publisher's stream. Default 300ms.
	KeyframeInterval time.Duration
	// SubscriberQueue is how many packets may wait for one subscriber's
	// writer before that subscriber starts losing packets. Default 1024.
	SubscriberQueue int
	// InitialBitrate is the bandwidth assumed for a new subscriber until
	// congestion control knows better, in bits per second. Default 1 Mbit/s.
	InitialBitrate int
	// LosslessBitrate is the least bandwidth, in bits per second, assumed
	// towards a subscriber that is not losing packets. Default 1 Mbit/s;
	// negative turns it off. Pion's delay-based estimate can fall far
	// below what a link carries when a sender's or receiver's CPU is busy
	// (scheduling delay reads as queueing; see pion/interceptor#156), and
	// would then pause videos on a healthy connection. Packet loss is what
	// proves a link short: a subscriber whose congestion controller sees
	// more than 10% loss (where GCC's own loss controller starts to cut)
	// gets the plain estimate, without this floor, for 10 seconds.
	LosslessBitrate int
	// DisableH264 and DisableVP9 keep those codecs out of negotiation.
	// Opus and VP8 are always offered.
	DisableH264, DisableVP9 bool

	// Logger receives the SFU's own diagnostics. Default slog.Default().
	Logger *slog.Logger
	// LoggerFactory receives pion's. Default: pion's default factory
	// (errors only, to stderr, unless PION_LOG_* says otherwise).
	LoggerFactory logging.LoggerFactory
}

var errNoAuthorizer = errors.New("media: Config.Authorizer is required")

func (c Config) withDefaults() (Config, error) {
	if c.Authorizer == nil {
		return c, errNoAuthorizer
	}
	if c.UDPAddr == "" {
		c.UDPAddr = ":7882"
	}
	if (c.UDPPortMin == 0) != (c.UDPPortMax == 0) || c.UDPPortMin > c.UDPPortMax {
		return c, fmt.Errorf("media: bad UDP port range %d-%d", c.UDPPortMin, c.UDPPortMax)
	}
	if c.TURNCredentialTTL <= 0 {
		c.TURNCredentialTTL = 12 * time.Hour
	}
	c.Limits = c.Limits.withDefaults(Limits{MaxParticipants: 100, MaxPublishers: 100, MaxBitrate: 200_000_000})
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 5 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 5 * time.Second
	}
	if c.ICEDisconnectedTimeout <= 0 {
		c.ICEDisconnectedTimeout = 3 * time.Second
	}
	if c.ICEFailedTimeout <= 0 {
		c.ICEFailedTimeout = 4 * time.Second
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = 300 * time.Millisecond
	}
	if c.SubscriberQueue <= 0 {
		c.SubscriberQueue = 1024
	}
	if c.InitialBitrate <= 0 {
		c.InitialBitrate = 1_000_000
	}
	if c.LosslessBitrate == 0 {
		c.LosslessBitrate = 1_000_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LoggerFactory == nil {
		c.LoggerFactory = logging.NewDefaultLoggerFactory()
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			return c, fmt.Errorf("media: PublicIPs: %q is not an IP address", ip)
		}
	}
	return c, nil
}
