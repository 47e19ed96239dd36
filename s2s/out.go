package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/xmppsrv"
)

// target is one address to try for a remote domain.
type target struct {
	addr   string // host:port
	direct bool   // direct TLS (XEP-0368) rather than STARTTLS
}

// errNotFound marks failures that mean "no such server" (DNS says no,
// connection refused, refused authentication): stanzas bounce with
// remote-server-not-found. Anything else that ends in a timeout bounces
// with remote-server-timeout.
var errNotFound = errors.New("s2s: remote server not found")

// resolve finds where domain's server listens (RFC 6120 3.2, XEP-0368):
// the Override entry, else the SRV records of _xmpps-server._tcp (direct
// TLS) and _xmpp-server._tcp (STARTTLS) by priority, else the domain
// itself on port 5269.
func (s *Server) resolve(ctx context.Context, domain string) ([]target, error) {
	if a, ok := s.cfg.Override[domain]; ok {
		if rest, ok := strings.CutPrefix(a, "tls://"); ok {
			return []target{{rest, true}}, nil
		}
		return []target{{a, false}}, nil
	}
	type rec struct {
		t        target
		prio     uint16
		weight   uint16
		position int
	}
	var recs []rec
	found := false
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := s.cfg.Resolver.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && (de.IsNotFound || de.IsTimeout) {
				continue
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		for _, r := range srvs {
			found = true
			if r.Target == "." {
				continue // RFC 2782: the service is decidedly not available here
			}
			host := strings.TrimSuffix(r.Target, ".")
			recs = append(recs, rec{target{net.JoinHostPort(host, strconv.Itoa(int(r.Port))), svc.direct}, r.Priority, r.Weight, len(recs)})
		}
	}
	if found && len(recs) == 0 {
		return nil, fmt.Errorf("%w: %s announces no XMPP server-to-server service", errNotFound, domain)
	}
	if !found {
		return []target{{net.JoinHostPort(domain, "5269"), false}}, nil
	}
	// LookupSRV sorts each service by priority and weight; merge the two
	// keeping that order, direct TLS first on equal priority.
	out := make([]target, 0, len(recs))
	for len(recs) > 0 {
		best := 0
		for i, r := range recs {
			if r.prio < recs[best].prio {
				best = i
			}
		}
		out = append(out, recs[best].t)
		recs = append(recs[:best], recs[best+1:]...)
	}
	return out, nil
}

// outRoute is the outbound stream from one local domain to one remote
// domain, with the stanzas waiting for it.
type outRoute struct {
	s        *Server
	from, to string

	mu    sync.Mutex
	queue []*xmppsrv.Element
	// unacked are the stanzas written on a stream with stream management
	// that the peer has not acknowledged yet, oldest first; acked counts
	// the acknowledged ones (modulo 2^32, XEP-0198's h).
	unacked  []*xmppsrv.Element
	acked    uint32
	running  bool // a goroutine owns the stream (connecting or up)
	conn     *xconn
	notify   chan struct{}
	stopping bool
}

func (s *Server) route(from, to string) *outRoute {
	key := from + " " + to
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.out[key]
	if r == nil {
		r = &outRoute{s: s, from: from, to: to, notify: make(chan struct{}, 1)}
		s.out[key] = r
	}
	return r
}

func (r *outRoute) enqueue(el *xmppsrv.Element) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		r.s.bounce(el, "remote-server-timeout", "the server is shutting down")
		return
	}
	if len(r.queue) >= r.s.cfg.QueueLength {
		r.mu.Unlock()
		r.s.bounce(el, "resource-constraint", "too many stanzas are waiting for "+r.to)
		return
	}
	r.queue = append(r.queue, el)
	start := !r.running
	r.running = true
	r.mu.Unlock()
	if start {
		r.s.wg.Add(1)
		go r.run()
	}
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// run establishes the stream and writes the queue to it until the stream
// idles out or fails. When establishing fails, every queued stanza is
// bounced. A stream that breaks with stanzas still queued is established
// again once.
func (r *outRoute) run() {
	defer r.s.wg.Done()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.s.ctx, r.s.cfg.ConnectTimeout)
		x, err := r.s.establish(ctx, r.from, r.to)
		cancel()
		if err != nil {
			r.s.log.Info("s2s: cannot reach remote server", "from", r.from, "to", r.to, "err", err)
			r.failAll(err)
			return
		}
		r.mu.Lock()
		r.conn = x
		r.mu.Unlock()
		broken := r.pump(x)
		x.c.Close()
		r.mu.Lock()
		r.conn = nil
		if !broken && !r.stopping {
			r.mu.Unlock() // idled out; pump handed the route back
			return
		}
		if broken && !r.stopping && attempt == 0 && len(r.queue) > 0 {
			r.mu.Unlock()
			continue
		}
		q := r.queue
		r.queue = nil
		r.running = false
		r.mu.Unlock()
		for _, el := range q {
			r.s.bounce(el, "remote-server-timeout", "the stream to "+r.to+" broke")
		}
		return
	}
}

func (r *outRoute) failAll(err error) {
	cond, text := "remote-server-timeout", "could not reach "+r.to+" in time"
	var ne net.Error
	if errors.Is(err, errNotFound) || !(errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		cond, text = "remote-server-not-found", "cannot reach "+r.to+": "+err.Error()
	}
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	r.running = false
	r.mu.Unlock()
	for _, el := range q {
		r.s.bounce(el, cond, text)
	}
}

// pump writes queued stanzas until the stream has been idle for
// IdleTimeout (then it closes the stream and reports false) or breaks
// (true: the stanzas not written, and with stream management those the
// peer had not acknowledged, are queued again, in order).
func (r *outRoute) pump(x *xconn) bool {
	r.mu.Lock()
	r.unacked, r.acked = nil, 0
	r.mu.Unlock()
	dead := make(chan struct{})
	go func() {
		// The receiving server sends nothing on this stream but
		// acknowledgements, keepalives, errors and its close.
		defer close(dead)
		for {
			el, err := x.next()
			if err != nil {
				if se, ok := err.(*streamError); ok {
					r.s.log.Info("s2s: outbound stream failed", "to", r.to, "err", se)
				}
				return
			}
			if !x.sm || el.Space != nsSM {
				continue
			}
			switch el.Local {
			case "a":
				if err := r.ack(el.Get("h")); err != nil {
					r.s.log.Info("s2s: bad acknowledgement", "to", r.to, "err", err)
					x.fail(serr("undefined-condition", "%v", err))
					return
				}
			case "r":
				x.write(smAck(0)) // nothing comes in on this stream
			}
		}
	}()
	idle := time.NewTimer(r.s.cfg.IdleTimeout)
	defer idle.Stop()
	asked := false // an idle stream asked once more for its acknowledgements
	for {
		r.mu.Lock()
		q := r.queue
		r.queue = nil
		stopping := r.stopping
		r.mu.Unlock()
		for i, el := range q {
			if x.sm {
				// Listed before the write, so an acknowledgement that
				// comes back at once finds it.
				r.mu.Lock()
				r.unacked = append(r.unacked, el)
				r.mu.Unlock()
			}
			if err := x.write(respace(el, nsClient, nsServer).Bytes(nsServer)); err != nil {
				if x.sm {
					r.requeue(q[i+1:])
				} else {
					r.requeue(q[i:])
				}
				return true
			}
		}
		if len(q) > 0 {
			idle.Reset(r.s.cfg.IdleTimeout)
			asked = false
			if x.sm {
				x.write(smRequest)
			}
		}
		if stopping {
			x.write([]byte("</stream:stream>"))
			return false
		}
		select {
		case <-r.notify:
		case <-dead:
			r.requeue(nil)
			return true
		case <-idle.C:
			r.mu.Lock()
			if len(r.queue) > 0 {
				r.mu.Unlock()
				continue
			}
			if len(r.unacked) > 0 && !asked {
				r.mu.Unlock()
				asked = true
				x.write(smRequest)
				idle.Reset(r.s.cfg.IdleTimeout)
				continue
			}
			lost := r.unacked
			r.unacked = nil
			r.running = false
			r.mu.Unlock()
			for _, el := range lost {
				r.s.bounce(el, "remote-server-timeout", r.to+" did not acknowledge it")
			}
			x.write([]byte("</stream:stream>"))
			select {
			case <-dead:
			case <-time.After(time.Second):
			}
			return false
		case <-r.s.ctx.Done():
			x.write([]byte("</stream:stream>"))
			return false
		}
	}
}

// ack takes an acknowledgement (XEP-0198 section 4): the peer handled h
// stanzas since stream management was enabled.
func (r *outRoute) ack(h string) error {
	v, err := strconv.ParseUint(h, 10, 32)
	if err != nil {
		return fmt.Errorf("h=%q is not a count", h)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := uint32(v) - r.acked
	if int(n) > len(r.unacked) {
		return fmt.Errorf("h=%d acknowledges %d stanzas, only %d were sent", v, n, len(r.unacked))
	}
	r.unacked = r.unacked[n:]
	r.acked = uint32(v)
	return nil
}

// requeue puts the unacknowledged stanzas, then rest, back at the head
// of the queue for the next stream.
func (r *outRoute) requeue(rest []*xmppsrv.Element) {
	r.mu.Lock()
	q := make([]*xmppsrv.Element, 0, len(r.unacked)+len(rest)+len(r.queue))
	q = append(append(append(q, r.unacked...), rest...), r.queue...)
	r.queue, r.unacked = q, nil
	r.mu.Unlock()
}

func (r *outRoute) shutdown() {
	r.mu.Lock()
	r.stopping = true
	q := r.queue
	if r.conn == nil {
		r.queue = nil
	} else {
		q = nil // the pump writes them, then closes
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	for _, el := range q {
		r.s.bounce(el, "remote-server-timeout", "the server is shutting down")
	}
}

// dial connects to the remote domain's server and negotiates TLS,
// returning the connection with the stream open and its features read.
func (s *Server) dial(ctx context.Context, from, to string) (*xconn, map[string]string, *xmppsrv.Element, bool, error) {
	targets, err := s.resolve(ctx, to)
	if err != nil {
		return nil, nil, nil, false, err
	}
	var errs []error
	for _, t := range targets {
		x, hdr, feats, verified, err := s.dialOne(ctx, from, to, t)
		if err == nil {
			s.log.Debug("s2s: connected", "to", to, "addr", t.addr, "direct", t.direct, "verified", verified)
			return x, hdr, feats, verified, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	err = errors.Join(errs...)
	if ctx.Err() != nil {
		return nil, nil, nil, false, fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return nil, nil, nil, false, err
}

func (s *Server) dialOne(ctx context.Context, from, to string, t target) (x *xconn, hdr map[string]string, feats *xmppsrv.Element, verified bool, err error) {
	c, err := s.cfg.Dial(ctx, "tcp", t.addr)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil, nil, false, err
		}
		return nil, nil, nil, false, fmt.Errorf("%w: %v", errNotFound, err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer func() {
		if !stop() && err == nil {
			err = context.DeadlineExceeded
		}
		c.SetDeadline(time.Time{})
		if err != nil {
			c.Close()
		}
	}()
	tlsConf := &tls.Config{
		ServerName:         to,
		InsecureSkipVerify: true, // verified below, to choose between EXTERNAL and dialback
		MinVersion:         tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.certificate(from)
		},
	}
	x = newXConn(s, c)
	if t.direct {
		tlsConf.NextProtos = []string{"xmpp-server"}
		tc := tls.Client(c, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, nil, false, err
		}
		x.setConn(tc)
		x.tls = true
	}
	for {
		if err := x.write(openHeader(from, to, "")); err != nil {
			return nil, nil, nil, false, err
		}
		if hdr, err = x.header(); err != nil {
			return nil, nil, nil, false, err
		}
		el, err := x.next()
		if err != nil {
			return nil, nil, nil, false, err
		}
		if el.Space != nsStream || el.Local != "features" {
			if el.Space == nsStream && el.Local == "error" {
				return nil, nil, nil, false, fmt.Errorf("%w: stream error %s", errNotFound, describe(el))
			}
			return nil, nil, nil, false, fmt.Errorf("expected stream features, got <%s/>", el.Local)
		}
		if x.tls {
			state := x.c.(*tls.Conn).ConnectionState()
			verified = s.verifyPeer(state, to)
			if !verified && s.cfg.Policy == CertOnly {
				return nil, nil, nil, false, fmt.Errorf("%w: the certificate of %s does not verify", errNotFound, to)
			}
			return x, hdr, el, verified, nil
		}
		if el.Child(nsTLS, "starttls") == nil {
			return nil, nil, nil, false, fmt.Errorf("%w: %s does not offer TLS", errNotFound, to)
		}
		if err := x.write([]byte(`<starttls xmlns="` + nsTLS + `"/>`)); err != nil {
			return nil, nil, nil, false, err
		}
		p, err := x.next()
		if err != nil {
			return nil, nil, nil, false, err
		}
		if p.Local != "proceed" {
			return nil, nil, nil, false, fmt.Errorf("%w: STARTTLS refused", errNotFound)
		}
		tc := tls.Client(c, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, nil, false, err
		}
		x.setConn(tc)
		x.tls = true
	}
}

// describe names the condition of a stream error or dialback error.
func describe(el *xmppsrv.Element) string {
	for _, c := range el.Elements() {
		if c.Local == "error" {
			return describe(c)
		}
		if c.Local != "text" {
			return c.Local
		}
	}
	return "unknown"
}

// establish opens an authenticated stream from a local domain to a
// remote one: SASL EXTERNAL when offered (the peer accepts our
// certificate), else dialback unless the policy forbids it.
func (s *Server) establish(ctx context.Context, from, to string) (*xconn, error) {
	x, hdr, feats, _, err := s.dial(ctx, from, to)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			x.c.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { x.c.SetDeadline(time.Now()) })
	defer stop()
	if mechs := feats.Child(nsSASL, "mechanisms"); mechs != nil && hasMechanism(mechs, "EXTERNAL") {
		x.write([]byte(`<auth xmlns="` + nsSASL + `" mechanism="EXTERNAL">` + base64.StdEncoding.EncodeToString([]byte(from)) + `</auth>`))
		el, err := x.next()
		if err != nil {
			return nil, err
		}
		if el.Space == nsSASL && el.Local == "success" {
			x.reset()
			if err := x.write(openHeader(from, to, "")); err != nil {
				return nil, err
			}
			if _, err := x.header(); err != nil {
				return nil, err
			}
			f, err := x.next() // features
			if err != nil {
				return nil, err
			}
			if err := x.enableSM(f); err != nil {
				return nil, err
			}
			ok = true
			x.c.SetDeadline(time.Time{})
			return x, nil
		}
		s.log.Info("s2s: SASL EXTERNAL refused; trying dialback", "to", to, "reply", el.Local)
	}
	if s.cfg.Policy == CertOnly {
		return nil, fmt.Errorf("%w: %s did not accept our certificate", errNotFound, to)
	}
	id := hdr["id"]
	if id == "" {
		return nil, fmt.Errorf("%w: %s sent no stream id", errNotFound, to)
	}
	key := DialbackKey(s.secret, to, from, id)
	if err := x.write([]byte(`<db:result from="` + xmppsrv.AttrEscape(from) + `" to="` + xmppsrv.AttrEscape(to) + `">` + key + `</db:result>`)); err != nil {
		return nil, err
	}
	for {
		el, err := x.next()
		if err != nil {
			if se, ok := err.(*streamError); ok {
				return nil, fmt.Errorf("%w: %v", errNotFound, se)
			}
			return nil, err
		}
		if el.Space == nsStream && el.Local == "error" {
			return nil, fmt.Errorf("%w: stream error %s", errNotFound, describe(el))
		}
		if el.Space != nsDialback || el.Local != "result" || el.Get("from") != to || el.Get("to") != from {
			continue
		}
		switch el.Get("type") {
		case "valid":
			if err := x.enableSM(feats); err != nil {
				return nil, err
			}
			ok = true
			x.c.SetDeadline(time.Time{})
			return x, nil
		case "invalid":
			return nil, fmt.Errorf("%w: %s refused our dialback key", errNotFound, to)
		default:
			return nil, fmt.Errorf("%w: %s refused dialback: %s", errNotFound, to, describe(el))
		}
	}
}

// enableSM turns stream management on (XEP-0198, acknowledgements only)
// when the receiving server offered it in feats, once authenticated; a
// refusal leaves the stream without it.
func (x *xconn) enableSM(feats *xmppsrv.Element) error {
	if feats == nil || feats.Child(nsSM, "sm") == nil {
		return nil
	}
	if err := x.write([]byte(`<enable xmlns="` + nsSM + `"/>`)); err != nil {
		return err
	}
	for {
		el, err := x.next()
		if err != nil {
			return err
		}
		if el.Space != nsSM {
			continue
		}
		x.sm = el.Local == "enabled"
		x.srv.log.Debug("s2s: stream management", "on", x.sm, "reply", el.Local)
		return nil
	}
}

func hasMechanism(mechs *xmppsrv.Element, name string) bool {
	for _, m := range mechs.Elements() {
		if m.Local == "mechanism" && strings.TrimSpace(m.Text()) == name {
			return true
		}
	}
	return false
}

// verifyKey asks the authoritative server of originating whether key is
// the dialback key it gave for the stream id that receiving (local) gave
// it (XEP-0220 2.3): "valid", "invalid", or an error.
func (s *Server) verifyKey(ctx context.Context, receiving, originating, id, key string) (bool, error) {
	x, _, _, _, err := s.dial(ctx, receiving, originating)
	if err != nil {
		return false, err
	}
	defer x.c.Close()
	stop := context.AfterFunc(ctx, func() { x.c.SetDeadline(time.Now()) })
	defer stop()
	if err := x.write([]byte(`<db:verify from="` + xmppsrv.AttrEscape(receiving) + `" to="` + xmppsrv.AttrEscape(originating) +
		`" id="` + xmppsrv.AttrEscape(id) + `">` + xmppsrv.AttrEscape(key) + `</db:verify>`)); err != nil {
		return false, err
	}
	for {
		el, err := x.next()
		if err != nil {
			return false, err
		}
		if el.Space == nsStream && el.Local == "error" {
			return false, fmt.Errorf("stream error %s", describe(el))
		}
		if el.Space != nsDialback || el.Local != "verify" || el.Get("id") != id {
			continue
		}
		x.write([]byte("</stream:stream>"))
		switch el.Get("type") {
		case "valid":
			return true, nil
		case "invalid":
			return false, nil
		default:
			return false, fmt.Errorf("dialback verification failed: %s", describe(el))
		}
	}
}
