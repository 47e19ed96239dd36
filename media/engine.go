package media

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// audioLevelURI is the RFC 6464 client-to-mixer audio level extension.
const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// engine holds what every PeerConnection of one SFU shares: codecs, network
// settings (the muxed sockets) and interceptor factories. Nothing here is
// package-level, so two SFUs in one process stay apart.
type engine struct {
	media   *webrtc.MediaEngine
	setting webrtc.SettingEngine
	// pubAPI builds publisher PeerConnections: NACK generation towards the
	// publisher, receiver reports and transport-wide CC feedback so the
	// publisher's own congestion control works.
	pubAPI *webrtc.API
	// subFactories (sender reports) and seqExt (the transport-wide
	// sequence number extension) are shared by the per-subscriber
	// registries; the congestion controller is per subscriber (see
	// subscriberAPI).
	subFactories   []interceptor.Factory
	seqExt         interceptor.Factory
	initialBitrate int

	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux
	udpAddr net.Addr
	tcpAddr net.Addr
}

func newEngine(cfg Config) (*engine, error) {
	e := &engine{initialBitrate: cfg.InitialBitrate}
	m, err := newMediaEngine(cfg)
	if err != nil {
		return nil, err
	}
	e.media = m

	se := webrtc.SettingEngine{LoggerFactory: cfg.LoggerFactory}
	se.SetICETimeouts(cfg.ICEDisconnectedTimeout, cfg.ICEFailedTimeout, time.Second)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.LoopbackCandidates {
		se.SetIncludeLoopbackCandidate(true)
	}
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}

	if err := e.openUDP(cfg, &se); err != nil {
		return nil, err
	}
	if cfg.TCPListener != nil || cfg.TCPAddr != "" {
		ln := cfg.TCPListener
		if ln == nil {
			if ln, err = net.Listen("tcp", cfg.TCPAddr); err != nil {
				e.close()
				return nil, fmt.Errorf("media: ICE-TCP: %w", err)
			}
		}
		e.tcpAddr = ln.Addr()
		if onLoopback(e.tcpAddr) {
			ln = loopbackListener{ln}
		}
		e.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:       ln,
			Logger:         cfg.LoggerFactory.NewLogger("ice-tcp"),
			ReadBufferSize: 64,
			// A slow TCP peer must not block the writer of other peers'
			// packets; past this much buffered data its packets drop.
			WriteBufferSize: 4 << 20,
		})
		se.SetICETCPMux(e.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	if len(cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			e.close()
			return nil, fmt.Errorf("media: PublicIPs: %w", err)
		}
	}
	e.setting = se

	pub := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor(nack.WithGeneratorLoggerFactory(cfg.LoggerFactory))
	if err != nil {
		e.close()
		return nil, err
	}
	rr, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(cfg.LoggerFactory))
	if err != nil {
		e.close()
		return nil, err
	}
	fb, err := twcc.NewSenderInterceptor(twcc.WithLoggerFactory(cfg.LoggerFactory))
	if err != nil {
		e.close()
		return nil, err
	}
	pub.Add(gen)
	pub.Add(rr)
	pub.Add(fb)
	e.pubAPI = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(pub))

	sr, err := report.NewSenderInterceptor(report.WithSenderLoggerFactory(cfg.LoggerFactory))
	if err != nil {
		e.close()
		return nil, err
	}
	seqExt, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		e.close()
		return nil, err
	}
	e.subFactories = []interceptor.Factory{sr}
	e.seqExt = seqExt
	return e, nil
}

func (e *engine) openUDP(cfg Config, se *webrtc.SettingEngine) error {
	if cfg.UDPPortMin != 0 {
		return se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax)
	}
	logger := cfg.LoggerFactory.NewLogger("ice-udp")
	if cfg.UDPConn != nil {
		conn := cfg.UDPConn
		e.udpAddr = conn.LocalAddr()
		if onLoopback(e.udpAddr) {
			se.SetIncludeLoopbackCandidate(true)
			if u, ok := conn.(*net.UDPConn); ok {
				conn = loopbackUDP{u}
			}
		}
		e.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn, Logger: logger})
		se.SetICEUDPMux(e.udpMux)
		return nil
	}
	host, portStr, err := net.SplitHostPort(cfg.UDPAddr)
	if err != nil {
		return fmt.Errorf("media: UDPAddr: %w", err)
	}
	ip := net.ParseIP(host)
	if host == "" || (ip != nil && ip.IsUnspecified()) {
		// One socket per local address, all on the same port: a wildcard
		// socket cannot tell which local address a peer reached.
		port, err := strconv.Atoi(portStr)
		if err != nil || port <= 0 || port > 65535 {
			return fmt.Errorf("media: UDPAddr %q: a wildcard address needs a fixed port", cfg.UDPAddr)
		}
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLogger(logger)}
		if cfg.LoopbackCandidates {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		mux, err := ice.NewMultiUDPMuxFromPort(port, opts...)
		if err != nil {
			return fmt.Errorf("media: UDP mux on %s: %w", cfg.UDPAddr, err)
		}
		e.udpMux = mux
		e.udpAddr = &net.UDPAddr{Port: port}
		se.SetICEUDPMux(mux)
		return nil
	}
	conn, err := net.ListenPacket("udp", cfg.UDPAddr)
	if err != nil {
		return fmt.Errorf("media: UDP mux: %w", err)
	}
	e.udpAddr = conn.LocalAddr()
	if onLoopback(e.udpAddr) {
		se.SetIncludeLoopbackCandidate(true)
		conn = loopbackUDP{conn.(*net.UDPConn)}
	}
	e.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn, Logger: logger})
	se.SetICEUDPMux(e.udpMux)
	return nil
}

// subscriberAPI builds the API for one subscriber PeerConnection. It is per
// subscriber because pion hands out a congestion controller's estimator
// only through a callback at PeerConnection creation, and this way the
// callback knows whose estimator it is.
func (e *engine) subscriberAPI(onEstimator func(cc.BandwidthEstimator)) (*webrtc.API, error) {
	initial := e.initialBitrate
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		// The SFU picks simulcast layers to fit the estimate, so pacing
		// in the estimator would only add a queue and a goroutine.
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(initial),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		)
	})
	if err != nil {
		return nil, err
	}
	ccf.OnNewPeerConnection(func(_ string, est cc.BandwidthEstimator) { onEstimator(est) })
	reg := &interceptor.Registry{}
	for _, f := range e.subFactories {
		reg.Add(f)
	}
	// Outgoing packets pass the interceptors last-registered first: the
	// transport-wide sequence number must be on a packet before the
	// congestion controller records it as sent.
	reg.Add(ccf)
	reg.Add(e.seqExt)
	return webrtc.NewAPI(webrtc.WithMediaEngine(e.media), webrtc.WithSettingEngine(e.setting), webrtc.WithInterceptorRegistry(reg)), nil
}

func (e *engine) close() error {
	var errs []error
	if e.udpMux != nil {
		errs = append(errs, e.udpMux.Close())
	}
	if e.tcpMux != nil {
		errs = append(errs, e.tcpMux.Close())
	}
	return errors.Join(errs...)
}

func newMediaEngine(cfg Config) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	videoFB := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBGoogREMB},
		{Type: webrtc.TypeRTCPFBTransportCC},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	}
	codecs := []struct {
		c    webrtc.RTPCodecParameters
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFB,
		}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
	}
	if !cfg.DisableVP9 {
		codecs = append(codecs, struct {
			c    webrtc.RTPCodecParameters
			kind webrtc.RTPCodecType
		}{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFB,
		}, PayloadType: 98}, webrtc.RTPCodecTypeVideo})
	}
	if !cfg.DisableH264 {
		for _, h := range []struct {
			pt   webrtc.PayloadType
			fmtp string
		}{
			{102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"},
			{106, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
			{112, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"},
		} {
			codecs = append(codecs, struct {
				c    webrtc.RTPCodecParameters
				kind webrtc.RTPCodecType
			}{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h.fmtp, RTCPFeedback: videoFB,
			}, PayloadType: h.pt}, webrtc.RTPCodecTypeVideo})
		}
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.c, c.kind); err != nil {
			return nil, fmt.Errorf("media: register %s: %w", c.c.MimeType, err)
		}
	}
	exts := []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		{sdp.SDESMidURI, webrtc.RTPCodecTypeAudio},
		{audioLevelURI, webrtc.RTPCodecTypeAudio},
		{sdp.TransportCCURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{sdp.TransportCCURI, webrtc.RTPCodecTypeVideo},
	}
	for _, x := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: x.uri}, x.kind); err != nil {
			return nil, fmt.Errorf("media: register %s: %w", x.uri, err)
		}
	}
	return m, nil
}
