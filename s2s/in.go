package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/xmppsrv"
)

// inStream is the state of one inbound connection.
type inStream struct {
	s    *Server
	x    *xconn
	id   string
	peer string // the stream header's 'from'
	to   string // the stream header's 'to': a local domain

	mu sync.Mutex
	// authed holds the "remote local" domain pairs the peer proved, by SASL
	// EXTERNAL or dialback; stanzas are accepted only for those.
	authed  map[string]bool
	pending map[string]bool // dialback verifications in flight
	sasl    bool

	// Stream management (XEP-0198, acknowledgements only), used by the
	// reading goroutine alone: sm once the peer enabled it, handled the
	// stanzas delivered since (modulo 2^32).
	sm      bool
	handled uint32
}

func (in *inStream) isAuthed(remote, local string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.authed[remote+" "+local]
}

func (in *inStream) anyAuthed() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.authed) > 0
}

func (in *inStream) setAuthed(remote, local string) {
	in.mu.Lock()
	in.authed[remote+" "+local] = true
	in.mu.Unlock()
	in.authenticated()
}

// authenticated swaps the authentication deadline for the idle timeout.
func (in *inStream) authenticated() {
	idle := in.s.cfg.IdleTimeout
	in.x.idle.Store(int64(idle))
	in.x.until.Store(0)
	in.x.c.SetReadDeadline(time.Now().Add(idle))
}

func (s *Server) serveConn(c net.Conn, direct bool) {
	in := &inStream{s: s, authed: map[string]bool{}, pending: map[string]bool{}}
	in.x = newXConn(s, c)
	in.x.until.Store(time.Now().Add(s.cfg.AuthTimeout).UnixNano())
	defer func() { in.x.c.Close() }()
	if direct {
		tc := tls.Server(c, s.serverTLS(true))
		tc.SetDeadline(time.Now().Add(s.cfg.AuthTimeout))
		if err := tc.Handshake(); err != nil {
			s.log.Debug("s2s: direct TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
		in.x.setConn(tc)
		in.x.tls = true
	}
	for {
		err := in.stream()
		if errors.Is(err, errRestart) {
			in.x.reset()
			continue
		}
		var se *streamError
		switch {
		case errors.As(err, &se):
			s.log.Info("s2s: inbound stream error", "peer", in.peer, "remote", c.RemoteAddr().String(), "err", se)
			in.x.fail(se)
		case errors.Is(err, errShutdown):
			// The last acknowledgement first, so that the sending server
			// neither resends nor bounces what was delivered here.
			in.sendAck()
			in.x.fail(serr("system-shutdown", "the server is shutting down"))
		case errors.Is(err, errClosed):
			in.sendAck()
			in.x.write([]byte("</stream:stream>"))
		}
		return
	}
}

// sendAck tells a peer that enabled stream management how many
// stanzas were handled (XEP-0198 section 4): when it asks, and once more
// before the stream closes.
func (in *inStream) sendAck() {
	if in.sm {
		in.x.write(smAck(in.handled))
	}
}

func (s *Server) serverTLS(direct bool) *tls.Config {
	tc := s.cfg.TLS.Clone()
	tc.ClientAuth = tls.RequestClientCert // for SASL EXTERNAL (XEP-0178)
	if direct {
		tc.NextProtos = []string{"xmpp-server"}
	} else {
		tc.NextProtos = nil
	}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	return tc
}

// stream runs one inbound stream until it ends or must restart.
func (in *inStream) stream() error {
	s := in.s
	x := in.x
	hdr, err := x.header()
	if err != nil {
		var se *streamError
		if errors.As(err, &se) {
			x.write(openHeader(in.to, "", randomID()))
		}
		return err
	}
	in.id = randomID()
	to := hdr["to"]
	if to != "" {
		if !s.cfg.Local.Local(to) {
			x.write(openHeader("", hdr["from"], in.id))
			return serr("host-unknown", "this server does not serve %q", to)
		}
		in.to = to
	}
	if f := hdr["from"]; f != "" {
		in.peer = f
	}
	x.write(openHeader(in.to, in.peer, in.id))
	if in.peer != "" && !s.Allowed(in.peer) {
		return serr("policy-violation", "federation with %s is not allowed on this server", in.peer)
	}
	x.write(in.features())
	for {
		el, err := x.next()
		if err != nil {
			return err
		}
		if err := in.handle(el); err != nil {
			return err
		}
	}
}

func (in *inStream) features() []byte {
	b := "<stream:features>"
	switch {
	case !in.x.tls:
		b += `<starttls xmlns="` + nsTLS + `"><required/></starttls>`
	default:
		in.mu.Lock()
		sasl := in.sasl
		in.mu.Unlock()
		if !sasl && in.peer != "" && in.s.verifyPeer(in.x.c.(*tls.Conn).ConnectionState(), in.peer) {
			b += `<mechanisms xmlns="` + nsSASL + `"><mechanism>EXTERNAL</mechanism></mechanisms>`
		}
		if in.s.cfg.Policy != CertOnly {
			b += `<dialback xmlns="` + nsDBFeat + `"><errors/></dialback>`
		}
		// Enabled once the peer has authenticated (XEP-0198 section 3).
		b += `<sm xmlns="` + nsSM + `"/>`
	}
	return []byte(b + "</stream:features>")
}

func (in *inStream) handle(el *xmppsrv.Element) error {
	s := in.s
	x := in.x
	switch {
	case el.Space == nsTLS && el.Local == "starttls":
		if x.tls {
			return serr("policy-violation", "TLS is already on")
		}
		x.write([]byte(`<proceed xmlns="` + nsTLS + `"/>`))
		tc := tls.Server(x.c, s.serverTLS(false))
		tc.SetDeadline(time.Now().Add(s.cfg.AuthTimeout))
		if err := tc.Handshake(); err != nil {
			return err
		}
		tc.SetDeadline(time.Time{})
		x.setConn(tc)
		x.tls = true
		return errRestart
	case !x.tls:
		return serr("policy-violation", "STARTTLS is required before anything else")
	case el.Space == nsSASL && el.Local == "auth":
		return in.external(el)
	case el.Space == nsDialback && el.Local == "verify":
		in.answerVerify(el)
		return nil
	case el.Space == nsDialback && el.Local == "result":
		return in.dialback(el)
	case el.Space == nsServer && (el.Local == "message" || el.Local == "presence" || el.Local == "iq"):
		return in.stanza(el)
	case el.Space == nsSM && el.Local == "enable":
		if !in.anyAuthed() || in.sm {
			// Before authentication, or a second time (XEP-0198 section 3).
			x.write([]byte(`<failed xmlns="` + nsSM + `"><unexpected-request xmlns="` + nsStanzas + `"/></failed>`))
			return nil
		}
		// Acknowledgements only: a broken stream is established again and
		// the peer sends what was not acknowledged, so no resumption.
		in.sm = true
		s.log.Debug("s2s: stream management enabled by the peer", "peer", in.peer)
		x.write([]byte(`<enabled xmlns="` + nsSM + `"/>`))
		return nil
	case el.Space == nsSM && el.Local == "r" && in.sm:
		in.sendAck()
		return nil
	case el.Space == nsSM && el.Local == "a" && in.sm:
		return nil // nothing is sent to the peer on its own stream
	case el.Space == nsStream && el.Local == "error":
		s.log.Info("s2s: peer sent a stream error", "peer", in.peer, "error", describe(el))
		return errClosed
	}
	return serr("unsupported-stanza-type", "<%s xmlns='%s'> is not expected here", el.Local, el.Space)
}

// external handles SASL EXTERNAL (XEP-0178): the peer's certificate must
// verify for the domain it authenticates as.
func (in *inStream) external(el *xmppsrv.Element) error {
	fail := func(cond string) error {
		in.x.write([]byte(`<failure xmlns="` + nsSASL + `"><` + cond + `/></failure>`))
		return nil
	}
	if el.Get("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism")
	}
	in.mu.Lock()
	done := in.sasl
	in.mu.Unlock()
	if done || in.peer == "" || in.to == "" {
		return fail("not-authorized")
	}
	authz := in.peer
	if t := strings.TrimSpace(el.Text()); t != "" && t != "=" {
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return fail("incorrect-encoding")
		}
		authz = string(b)
	}
	if authz != in.peer {
		return fail("invalid-authzid")
	}
	if !in.s.Allowed(in.peer) || !in.s.verifyPeer(in.x.c.(*tls.Conn).ConnectionState(), in.peer) {
		return fail("not-authorized")
	}
	in.mu.Lock()
	in.sasl = true
	in.mu.Unlock()
	in.setAuthed(in.peer, in.to)
	in.s.log.Info("s2s: inbound stream authenticated", "from", in.peer, "to", in.to, "method", "EXTERNAL")
	in.x.write([]byte(`<success xmlns="` + nsSASL + `"/>`))
	return errRestart
}

// answerVerify answers a dialback verification (XEP-0220 2.3.2) as the
// authoritative server of one of the local domains.
func (in *inStream) answerVerify(el *xmppsrv.Element) {
	from, to, id := el.Get("from"), el.Get("to"), el.Get("id")
	reply := xmppsrv.NewElement(nsDialback, "verify", "from", to, "to", from, "id", id)
	switch {
	case !in.s.cfg.Local.Local(to):
		reply.Set("type", "error")
		reply.Add(dbError("cancel", "item-not-found", to+" is not served here"))
	case DialbackKey(in.s.secret, from, to, id) == strings.TrimSpace(el.Text()):
		reply.Set("type", "valid")
	default:
		reply.Set("type", "invalid")
	}
	in.x.write(reply.Bytes(nsServer))
}

// dialback handles a dialback request (XEP-0220 2.1.2): the peer claims
// 'from' and asks to send to 'to'. The key is checked with the
// authoritative server of 'from', found through DNS, so a server that is
// not authoritative for 'from' (or sends a wrong key) is refused with
// type='invalid'. Further domains may be piggybacked on the same stream;
// each is verified on its own.
func (in *inStream) dialback(el *xmppsrv.Element) error {
	s := in.s
	from, to := el.Get("from"), el.Get("to")
	key := strings.TrimSpace(el.Text())
	reply := func(typ string, err *xmppsrv.Element) {
		r := xmppsrv.NewElement(nsDialback, "result", "from", to, "to", from, "type", typ)
		if err != nil {
			r.Add(err)
		}
		in.x.write(r.Bytes(nsServer))
	}
	if s.cfg.Policy == CertOnly {
		reply("error", dbError("cancel", "policy-violation", "this server accepts only peers with verified certificates"))
		return nil
	}
	fj, err := jid.Parse(from)
	if err != nil || fj.Local() != "" || fj.Resource() != "" || key == "" {
		return serr("improper-addressing", "a dialback request needs a domain 'from', a 'to' and a key")
	}
	if in.peer == "" {
		in.peer = from
	}
	switch {
	case !s.cfg.Local.Local(to):
		reply("error", dbError("cancel", "item-not-found", to+" is not served here"))
		return nil
	case s.cfg.Local.Local(from):
		reply("invalid", nil) // a peer claiming one of our own domains
		return nil
	case !s.Allowed(from):
		reply("error", dbError("cancel", "policy-violation", "federation with "+from+" is not allowed on this server"))
		return nil
	case in.isAuthed(from, to):
		reply("valid", nil)
		return nil
	}
	pair := from + " " + to
	in.mu.Lock()
	busy := in.pending[pair]
	in.pending[pair] = true
	in.mu.Unlock()
	if busy {
		return nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout)
		defer cancel()
		ok, err := s.verifyKey(ctx, to, from, in.id, key)
		in.mu.Lock()
		delete(in.pending, pair)
		if ok {
			in.authed[pair] = true
		}
		in.mu.Unlock()
		if ok {
			in.authenticated()
		}
		switch {
		case err != nil:
			s.log.Info("s2s: dialback verification failed", "from", from, "to", to, "err", err)
			reply("error", dbError("cancel", "remote-connection-failed", "could not verify the key with "+from))
		case ok:
			s.log.Info("s2s: inbound stream authenticated by dialback", "from", from, "to", to)
			reply("valid", nil)
		default:
			s.log.Warn("s2s: forged dialback refused", "from", from, "to", to, "remote", in.x.c.RemoteAddr().String())
			reply("invalid", nil)
		}
	}()
	return nil
}

// stanza checks an inbound stanza's addresses against what the peer
// authenticated and hands it to the local server.
func (in *inStream) stanza(el *xmppsrv.Element) error {
	if !in.anyAuthed() {
		return serr("not-authorized", "authenticate (SASL EXTERNAL or dialback) before sending stanzas")
	}
	from, err := jid.Parse(el.Get("from"))
	if err != nil {
		return serr("invalid-from", "'from' is missing or malformed")
	}
	to, err := jid.Parse(el.Get("to"))
	if err != nil {
		return serr("improper-addressing", "'to' is missing or malformed")
	}
	if !in.s.cfg.Local.Local(to.Domain()) {
		return serr("host-unknown", "%s is not served here", to.Domain())
	}
	if !in.isAuthed(from.Domain(), to.Domain()) {
		return serr("invalid-from", "%s is not authenticated on this stream for %s", from.Domain(), to.Domain())
	}
	el = respace(el, nsServer, nsClient)
	el.Set("from", from.String())
	el.Set("to", to.String())
	in.s.cfg.Local.Deliver(el)
	if in.sm {
		in.handled++
	}
	return nil
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
