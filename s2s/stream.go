package s2s

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/ratelimit"
	"github.com/parleyhq/parley/xmppsrv"
)

const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsServer   = "jabber:server"
	nsClient   = "jabber:client"
	nsDialback = "jabber:server:dialback"
	nsDBFeat   = "urn:xmpp:features:dialback"
	nsSM       = "urn:xmpp:sm:3"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsXML      = "http://www.w3.org/XML/1998/namespace"
)

// DialbackKey computes the dialback key of XEP-0185 that the originating
// server sends to the receiving server on the stream with id streamID:
// HMAC-SHA256 keyed with the hex SHA-256 of the secret, over
// "receiving originating streamID", in hex.
func DialbackKey(secret []byte, receiving, originating, streamID string) string {
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	m.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// streamError is a stream-level error (RFC 6120 4.9), sent before closing.
type streamError struct {
	cond, text string
}

func (e *streamError) Error() string {
	if e.text == "" {
		return "stream error " + e.cond
	}
	return "stream error " + e.cond + ": " + e.text
}

func serr(cond, format string, args ...any) *streamError {
	return &streamError{cond, fmt.Sprintf(format, args...)}
}

func (e *streamError) bytes() []byte {
	b := `<stream:error><` + e.cond + ` xmlns="` + nsStreams + `"/>`
	if e.text != "" {
		b += `<text xmlns="` + nsStreams + `" xml:lang="en">` + xmppsrv.AttrEscape(e.text) + `</text>`
	}
	return []byte(b + `</stream:error></stream:stream>`)
}

var (
	errTooBig  = errors.New("s2s: stanza too large")
	errClosed  = errors.New("s2s: peer closed the stream")
	errRestart = errors.New("s2s: stream restart")
	// smRequest asks the peer for an acknowledgement (XEP-0198).
	smRequest = []byte(`<r xmlns="` + nsSM + `"/>`)

	// errShutdown stops a read when the server shuts down.
	errShutdown = errors.New("s2s: server shutting down")
)

// xconn is one TCP (then TLS) connection carrying XML streams. Reads
// happen on one goroutine at a time; writes are serialised by wmu.
type xconn struct {
	srv *Server
	c   net.Conn
	br  *bufio.Reader
	lim limitReader
	d   *xml.Decoder
	wmu sync.Mutex
	tls bool
	// until, when set (Unix nanoseconds), is when reading must have
	// finished (the authentication deadline); otherwise idle, when set,
	// bounds the silence before each read returns.
	until atomic.Int64
	idle  atomic.Int64
	// sm is set on an outbound stream whose peer enabled stream
	// management (XEP-0198).
	sm bool
	// rate is Config.ReadRate's budget, the same across STARTTLS and
	// stream restarts.
	rate *ratelimit.Bucket
}

type limitReader struct {
	x   *xconn
	n   int
	max int
}

func (r *limitReader) Read(p []byte) (int, error) {
	if r.n >= r.max {
		return 0, errTooBig
	}
	if len(p) > r.max-r.n {
		p = p[:r.max-r.n]
	}
	if u := r.x.until.Load(); u != 0 {
		r.x.c.SetReadDeadline(time.Unix(0, u))
	} else if t := r.x.idle.Load(); t > 0 {
		r.x.c.SetReadDeadline(time.Now().Add(time.Duration(t)))
	}
	// Checked after the deadline is set: Shutdown cancels, then sets a
	// deadline in the past, so one of the two stops this read.
	if r.x.srv.ctx.Err() != nil {
		return 0, errShutdown
	}
	n, err := r.x.br.Read(p)
	r.n += n
	if wait := r.x.rate.Take(n); wait > 0 {
		// Over its rate: read the peer again once the deficit is earned
		// back; TCP holds the rest.
		ratelimit.Pause(wait, r.x.srv.ctx.Done())
	}
	return n, err
}

func newXConn(s *Server, c net.Conn) *xconn {
	x := &xconn{srv: s, c: c, rate: ratelimit.New(s.cfg.ReadRate, s.cfg.ReadBurst)}
	x.setConn(c)
	return x
}

// setConn switches to c (after a TLS handshake) and starts a new decoder.
func (x *xconn) setConn(c net.Conn) {
	x.c = c
	x.br = bufio.NewReaderSize(c, 4096)
	x.reset()
}

// reset starts a fresh decoder for a restarted stream.
func (x *xconn) reset() {
	x.lim = limitReader{x: x, max: x.srv.cfg.MaxStanzaSize}
	x.d = xml.NewDecoder(&x.lim)
	x.d.Strict = true
}

func (x *xconn) write(b []byte) error {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.c.SetWriteDeadline(time.Now().Add(x.srv.cfg.WriteTimeout))
	_, err := x.c.Write(b)
	return err
}

// smAck acknowledges h stanzas handled (XEP-0198).
func smAck(h uint32) []byte {
	return []byte(`<a xmlns="` + nsSM + `" h="` + strconv.FormatUint(uint64(h), 10) + `"/>`)
}

// fail sends a stream error and closes the connection.
func (x *xconn) fail(e *streamError) {
	x.write(e.bytes())
	x.c.Close()
}

// header reads the peer's stream header, returning its attributes.
func (x *xconn) header() (map[string]string, error) {
	for {
		x.lim.n = 0
		tok, err := x.d.Token()
		if err != nil {
			return nil, x.readError(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, serr("restricted-xml", "XMPP forbids processing instructions")
			}
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, serr("not-well-formed", "text before the stream header")
			}
		case xml.StartElement:
			if t.Name.Local != "stream" || t.Name.Space != nsStream {
				return nil, serr("invalid-namespace", "expected <stream:stream> in %s", nsStream)
			}
			attrs := map[string]string{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && (a.Name.Local == "to" || a.Name.Local == "from" || a.Name.Local == "id" || a.Name.Local == "version" || a.Name.Local == "xmlns"):
					attrs[a.Name.Local] = a.Value
				case a.Name.Space == "xmlns" && a.Name.Local == "db":
					attrs["db"] = a.Value
				}
			}
			if attrs["xmlns"] != nsServer {
				return nil, serr("invalid-namespace", "the default namespace of a server stream must be %s", nsServer)
			}
			if v := attrs["version"]; !strings.HasPrefix(v, "1.") {
				return nil, serr("unsupported-version", "this server speaks XMPP 1.0 streams only")
			}
			return attrs, nil
		default:
			return nil, serr("restricted-xml", "XMPP forbids DTDs, comments and processing instructions")
		}
	}
}

// next reads the next top-level element, skipping whitespace keepalives.
func (x *xconn) next() (*xmppsrv.Element, error) {
	for {
		x.lim.n = 0
		tok, err := x.d.Token()
		if err != nil {
			return nil, x.readError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := xmppsrv.ReadElement(x.d, t)
			if err != nil {
				return nil, x.readError(err)
			}
			return el, nil
		case xml.EndElement:
			return nil, errClosed
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, serr("bad-format", "text is not allowed between stanzas")
			}
		default:
			return nil, serr("restricted-xml", "XMPP forbids comments, processing instructions and directives")
		}
	}
}

func (x *xconn) readError(err error) error {
	var syn *xml.SyntaxError
	var ne net.Error
	switch {
	case errors.Is(err, errShutdown), errors.As(err, &ne) && ne.Timeout() && x.srv.ctx.Err() != nil:
		return errShutdown
	case errors.Is(err, errTooBig):
		return serr("policy-violation", "stanza larger than %d bytes", x.srv.cfg.MaxStanzaSize)
	case errors.As(err, &ne) && ne.Timeout():
		return serr("connection-timeout", "the stream was idle too long")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errClosed
	case errors.As(err, &syn):
		if strings.Contains(syn.Msg, "unexpected EOF") {
			return errClosed
		}
		return serr("not-well-formed", "%s", syn.Msg)
	case strings.Contains(err.Error(), "XMPP forbids"):
		return serr("restricted-xml", "%s", err.Error())
	}
	return err
}

// openHeader is the stream header this server sends.
func openHeader(from, to, id string) []byte {
	h := `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'`
	if from != "" {
		h += ` from='` + xmppsrv.AttrEscape(from) + `'`
	}
	if to != "" {
		h += ` to='` + xmppsrv.AttrEscape(to) + `'`
	}
	if id != "" {
		h += ` id='` + xmppsrv.AttrEscape(id) + `'`
	}
	return []byte(h + ` xml:lang='en'>`)
}

// respace returns a copy of el with namespace from replaced by to on el and
// its descendants: stanzas are jabber:client inside Parley and
// jabber:server on server streams.
func respace(el *xmppsrv.Element, from, to string) *xmppsrv.Element {
	c := &xmppsrv.Element{Space: el.Space, Local: el.Local, Attr: el.Attr}
	if c.Space == from {
		c.Space = to
	}
	c.Children = make([]xmppsrv.Node, len(el.Children))
	for i, n := range el.Children {
		if n.El != nil {
			n = xmppsrv.Node{El: respace(n.El, from, to)}
		}
		c.Children[i] = n
	}
	return c
}

// errorTypes gives the error type of the stanza conditions s2s produces.
var errorTypes = map[string]string{
	"remote-server-not-found": "cancel",
	"remote-server-timeout":   "wait",
	"resource-constraint":     "wait",
	"service-unavailable":     "cancel",
	"policy-violation":        "modify",
}

// errorReply returns the error stanza (jabber:client) that answers el.
func errorReply(el *xmppsrv.Element, cond, text string) *xmppsrv.Element {
	r := xmppsrv.NewElement(nsClient, el.Local, "type", "error")
	if id := el.Get("id"); id != "" {
		r.Set("id", id)
	}
	r.Set("from", el.Get("to"))
	r.Set("to", el.Get("from"))
	if el.Local != "iq" {
		for _, n := range el.Children {
			if n.El != nil && n.El.Local == "error" {
				continue
			}
			r.Children = append(r.Children, n)
		}
	} else if p := el.FirstChild(); p != nil && (el.Get("type") == "get" || el.Get("type") == "set") {
		r.Add(p)
	}
	typ := errorTypes[cond]
	if typ == "" {
		typ = "cancel"
	}
	e := xmppsrv.NewElement(nsClient, "error", "type", typ).Add(xmppsrv.NewElement(nsStanzas, cond))
	if text != "" {
		t := xmppsrv.NewElement(nsStanzas, "text")
		t.Attr = append(t.Attr, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: "en"})
		e.Add(t.AddText(text))
	}
	return r.Add(e)
}

// dbError returns the error child of a dialback element (XEP-0220 2.4).
func dbError(typ, cond, text string) *xmppsrv.Element {
	e := xmppsrv.NewElement(nsServer, "error", "type", typ)
	c := xmppsrv.NewElement(nsStanzas, cond)
	e.Add(c)
	if text != "" {
		e.Add(xmppsrv.NewElement(nsStanzas, "text").AddText(text))
	}
	return e
}
