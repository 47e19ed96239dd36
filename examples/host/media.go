package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/parleyhq/parley/media"
)

// mediaOptions are the flags of meetings' audio and video (Parley's SFU).
type mediaOptions struct {
	udpAddr, tcpAddr string
	publicIP         string
	stun, turn       string
	turnSecret       string
	disable          bool
}

func (m *mediaOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&m.udpAddr, "media-udp-addr", "", "UDP `address` for meetings' audio and video, one port for everyone (default :7882; open it in the firewall)")
	fs.StringVar(&m.tcpAddr, "media-tcp-addr", "", "TCP `address` for audio and video over ICE-TCP, for networks that block UDP (default off)")
	fs.StringVar(&m.publicIP, "media-public-ip", "", "public `addresses` (comma-separated) browsers reach audio and video at, when this host is behind a 1:1 NAT")
	fs.StringVar(&m.stun, "stun", "", "STUN server `URLs` for browsers, comma-separated (stun:stun.example.com:3478)")
	fs.StringVar(&m.turn, "turn", "", "TURN server `URLs` for browsers, comma-separated (turn:turn.example.com:3478?transport=udp)")
	fs.StringVar(&m.turnSecret, "turn-secret", "", "TURN REST API shared `secret` (coturn's static-auth-secret): browsers get credentials that expire")
	fs.BoolVar(&m.disable, "disable-media", false, "meetings without audio and video (chat and files only)")
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (m *mediaOptions) publicIPs() []string { return splitList(m.publicIP) }

func (m *mediaOptions) iceServers() []media.ICEServer {
	var out []media.ICEServer
	if urls := splitList(m.stun); len(urls) > 0 {
		out = append(out, media.ICEServer{URLs: urls})
	}
	if urls := splitList(m.turn); len(urls) > 0 {
		out = append(out, media.ICEServer{URLs: urls, Secret: m.turnSecret})
	}
	return out
}

// mediaLine is the banner's line for audio and video.
func mediaLine(sfu *media.SFU) string {
	if sfu == nil {
		return "off (-disable-media)"
	}
	s := "UDP port range"
	if a := sfu.UDPAddr(); a != nil {
		s = "UDP " + a.String()
	}
	if a := sfu.TCPAddr(); a != nil {
		s += fmt.Sprintf(", ICE-TCP %s", a)
	}
	return s + "   (audio and video of meetings: open it in the firewall)"
}
