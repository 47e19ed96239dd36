package xmppsrv

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/jid"
)

const nsExtDisco = "urn:xmpp:extdisco:2"

// ICEServer is a STUN or TURN server for external service discovery; its
// fields are media.ICEServer's, so a host converts one to the other with
// a type conversion.
type ICEServer struct {
	// URLs such as "stun:stun.example.com:3478" or
	// "turns:turn.example.com:443?transport=tcp".
	URLs []string
	// Username and Credential are handed out unchanged when Secret is
	// empty.
	Username   string
	Credential string
	// Secret is a TURN REST API shared secret (coturn's
	// static-auth-secret): each user then gets credentials of its own
	// that expire.
	Secret string
}

// extService is one parsed URL of an ICEServer.
type extService struct {
	typ, host, transport string
	port                 int
	srv                  *ICEServer
}

// ExtDisco returns the handler of external service discovery (XEP-0215)
// on the server: the STUN and TURN servers, with TURN REST credentials
// (draft-uberti-behave-turn-rest) that expire after ttl (default 12h)
// for a server with a Secret. URLs that do not parse are an error.
func ExtDisco(servers []ICEServer, ttl time.Duration) (AccountHandler, error) {
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	d := &extDisco{ttl: ttl}
	for i := range servers {
		for _, u := range servers[i].URLs {
			s, err := parseICEURL(u)
			if err != nil {
				return nil, fmt.Errorf("xmppsrv: external service %q: %w", u, err)
			}
			s.srv = &servers[i]
			d.services = append(d.services, s)
		}
	}
	return d, nil
}

// parseICEURL reads a stun:, stuns:, turn: or turns: URL (RFC 7064,
// RFC 7065).
func parseICEURL(u string) (extService, error) {
	var s extService
	scheme, rest, ok := strings.Cut(u, ":")
	switch scheme {
	case "stun", "turn":
		s.transport, s.port = "udp", 3478
	case "stuns", "turns":
		s.transport, s.port = "tcp", 5349
	default:
		return s, fmt.Errorf("not a stun:, stuns:, turn: or turns: URL")
	}
	if !ok || rest == "" {
		return s, fmt.Errorf("no host")
	}
	s.typ = scheme
	hostport, query, _ := strings.Cut(rest, "?")
	if t, ok := strings.CutPrefix(query, "transport="); ok {
		if t != "udp" && t != "tcp" {
			return s, fmt.Errorf("transport %q", t)
		}
		s.transport = t
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	} else {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("port %q", port)
		}
		s.port = n
	}
	if host == "" {
		return s, fmt.Errorf("no host")
	}
	s.host = host
	return s, nil
}

type extDisco struct {
	services []extService
	ttl      time.Duration
	now      func() time.Time // for tests
}

func (d *extDisco) Namespace() string { return nsExtDisco }

func (d *extDisco) Features() (account, server []string) { return nil, []string{nsExtDisco} }

// element renders a service; with creds, its credentials too.
func (d *extDisco) element(s extService, user jid.JID, creds bool) *Element {
	e := NewElement(nsExtDisco, "service", "type", s.typ, "host", s.host, "port", strconv.Itoa(s.port), "transport", s.transport)
	if !creds {
		return e
	}
	switch {
	case s.srv.Secret != "":
		now := time.Now()
		if d.now != nil {
			now = d.now()
		}
		exp := now.Add(d.ttl).UTC()
		username := strconv.FormatInt(exp.Unix(), 10) + ":" + user.Bare().String()
		mac := hmac.New(sha1.New, []byte(s.srv.Secret))
		mac.Write([]byte(username))
		e.Set("username", username)
		e.Set("password", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		e.Set("expires", exp.Format("2006-01-02T15:04:05Z"))
	case s.srv.Username != "":
		e.Set("username", s.srv.Username)
		e.Set("password", s.srv.Credential)
	}
	return e
}

// HandleIQ answers <services/> (optionally of one type) and
// <credentials/> (XEP-0215 sections 3.1 to 3.3) sent to the server.
func (d *extDisco) HandleIQ(s *Session, el, p *Element, owner jid.JID) bool {
	if el.Get("type") != "get" || (el.Get("to") != "" && el.Get("to") != s.domain) {
		return false
	}
	switch p.Local {
	case "services":
		typ := p.Get("type")
		out := NewElement(nsExtDisco, "services")
		if typ != "" {
			out.Set("type", typ)
		}
		for _, sv := range d.services {
			if typ == "" || sv.typ == typ {
				out.Add(d.element(sv, s.bare, true))
			}
		}
		s.send(iqResult(el, out).Bytes(nsClient))
	case "credentials":
		want := p.Child(nsExtDisco, "service")
		if want == nil || want.Get("host") == "" || want.Get("type") == "" {
			s.send(errorReply(el, "bad-request", "name the service by host and type"))
			return true
		}
		out := NewElement(nsExtDisco, "credentials")
		for _, sv := range d.services {
			if sv.host == want.Get("host") && sv.typ == want.Get("type") &&
				(want.Get("port") == "" || want.Get("port") == strconv.Itoa(sv.port)) {
				out.Add(d.element(sv, s.bare, true))
			}
		}
		if len(out.Children) == 0 {
			s.send(errorReply(el, "item-not-found", "no such service here"))
			return true
		}
		s.send(iqResult(el, out).Bytes(nsClient))
	default:
		return false
	}
	return true
}
