package xmppsrv

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/parleyhq/parley/account"
)

const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// WebSocketHandler serves XMPP over WebSocket (RFC 7395, subprotocol
// "xmpp") on the same sessions, routing and archive as TCP clients. Any
// origin may connect and log in with SASL, as third-party web clients
// (Converse.js, xmpp.js) do. When the host's Authenticator implements
// account.RequestAuthenticator and the request comes from an allowed
// origin (the page's own, or Config.WebOrigins), the webmail session
// authenticates the stream: SASL EXTERNAL is offered and logs that user in
// without a second password.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(s.serveWebSocket)
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if s.shutdown.Load() {
		http.Error(w, "the server is shutting down", http.StatusServiceUnavailable)
		return
	}
	secure := r.TLS != nil || s.cfg.AllowUnencrypted || s.cfg.TrustForwardedTLS && r.Header.Get("X-Forwarded-Proto") == "https"
	if !secure {
		http.Error(w, "XMPP over WebSocket needs https (wss://)", http.StatusForbidden)
		return
	}
	external := ""
	if ra, ok := s.cfg.Auth.(account.RequestAuthenticator); ok && s.sameOrigin(r) {
		if addr, err := ra.AuthenticateRequest(r); err == nil && addr != "" {
			external = addr
		}
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"xmpp"},
		InsecureSkipVerify: true, // SASL, not the cookie, authenticates cross-origin clients
	})
	if err != nil {
		s.log.Debug("WebSocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if c.Subprotocol() != "xmpp" {
		c.Close(websocket.StatusProtocolError, `the "xmpp" subprotocol is required (RFC 7395)`)
		return
	}
	c.SetReadLimit(int64(s.cfg.MaxStanzaSize) + 1024)
	conn := newWSConn(c, r)
	sess := newSession(s, conn, true)
	sess.ws = true
	sess.external = external
	if !s.track(sess) {
		c.Close(websocket.StatusGoingAway, "the server is shutting down")
		return
	}
	sess.run()
}

// sameOrigin reports whether a browser request comes from a page Parley
// trusts with the webmail session: the same origin as the request's host,
// or one listed in Config.WebOrigins. Without this check any web site
// could open a chat session with a visitor's cookies.
func (s *Server) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range s.cfg.WebOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// wsConn adapts a WebSocket to the byte stream the session reads and
// writes: incoming <open/> and <close/> become the stream header and end
// tag, and what the session writes is split into one message per
// top-level element, with <open/> and <close/> for the stream's edges.
type wsConn struct {
	c      *websocket.Conn
	local  net.Addr
	remote net.Addr

	input frameIn // messages read by the pump, translated

	mu            sync.Mutex
	writeDeadline time.Time

	wmu   sync.Mutex
	split splitter
	ctx   context.Context
	stop  context.CancelFunc
}

func newWSConn(c *websocket.Conn, r *http.Request) *wsConn {
	ctx, stop := context.WithCancel(context.Background())
	w := &wsConn{c: c, input: newFrameIn(16), ctx: ctx, stop: stop,
		remote: wsAddr(r.RemoteAddr), local: wsAddr(r.Host)}
	go w.pump()
	return w
}

type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

func (w *wsConn) pump() {
	for {
		typ, b, err := w.c.Read(w.ctx)
		if err != nil {
			if websocket.CloseStatus(err) != -1 {
				err = io.EOF
			}
			w.input.end(err)
			return
		}
		if typ != websocket.MessageText {
			w.input.end(errors.New("RFC 7395 frames are text messages"))
			return
		}
		select {
		case w.input.in <- translateIn(b):
		case <-w.ctx.Done():
			w.input.end(io.EOF)
			return
		}
	}
}

// translateIn turns one client message into stream bytes.
func translateIn(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if bytes.HasPrefix(b, []byte("<?xml")) {
		if i := bytes.Index(b, []byte("?>")); i >= 0 {
			b = bytes.TrimSpace(b[i+2:])
		}
	}
	if !bytes.HasPrefix(b, []byte("<open")) && !bytes.HasPrefix(b, []byte("<close")) {
		return b
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	se, ok := tok.(xml.StartElement)
	if err != nil || !ok || se.Name.Space != nsFraming {
		return b // let the stream parser reject it
	}
	if se.Name.Local == "close" {
		return []byte("</stream:stream>")
	}
	var hdr strings.Builder
	hdr.WriteString(`<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"`)
	for _, a := range se.Attr {
		switch {
		case a.Name.Space == "" && (a.Name.Local == "to" || a.Name.Local == "version" || a.Name.Local == "from"):
			hdr.WriteString(" " + a.Name.Local + `="` + AttrEscape(a.Value) + `"`)
		case a.Name.Local == "lang":
			hdr.WriteString(` xml:lang="` + AttrEscape(a.Value) + `"`)
		}
	}
	hdr.WriteString(">")
	return []byte(hdr.String())
}

func (w *wsConn) Read(p []byte) (int, error) { return w.input.read(p) }

func (w *wsConn) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	msgs := w.split.feed(p)
	w.mu.Lock()
	dl := w.writeDeadline
	w.mu.Unlock()
	ctx := w.ctx
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	for _, m := range msgs {
		if err := w.c.Write(ctx, websocket.MessageText, m); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Close starts the WebSocket closing handshake and returns without waiting
// for the peer's answer (up to seconds), so that a session ends, and its
// contacts see it leave, at once.
func (w *wsConn) Close() error {
	w.stop()
	go w.c.Close(websocket.StatusNormalClosure, "")
	return nil
}

func (w *wsConn) LocalAddr() net.Addr  { return w.local }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }
func (w *wsConn) SetDeadline(t time.Time) error {
	w.SetReadDeadline(t)
	return w.SetWriteDeadline(t)
}
func (w *wsConn) SetReadDeadline(t time.Time) error {
	w.input.setDeadline(t)
	return nil
}
func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	w.writeDeadline = t
	w.mu.Unlock()
	return nil
}

// splitter cuts the session's output (well-formed, escaped XML that Parley
// wrote itself) into top-level elements and rewrites the stream's edges
// into RFC 7395 framing.
type splitter struct {
	buf   []byte
	depth int
	pos   int // where scanning resumes in buf
}

func (sp *splitter) feed(p []byte) [][]byte {
	sp.buf = append(sp.buf, p...)
	var out [][]byte
	i, start := sp.pos, 0
	for i < len(sp.buf) {
		if sp.buf[i] != '<' {
			if sp.depth == 0 {
				start = i + 1 // whitespace between elements
			}
			i++
			continue
		}
		end := tagEnd(sp.buf, i)
		if end < 0 {
			break // the tag continues in a later write
		}
		tag := sp.buf[i : end+1]
		switch {
		case bytes.HasPrefix(tag, []byte("<?")):
			start = end + 1
		case bytes.HasPrefix(tag, []byte("<stream:stream")):
			out = append(out, openFrame(tag))
			start = end + 1
		case bytes.HasPrefix(tag, []byte("</stream:stream")):
			out = append(out, []byte(`<close xmlns="`+nsFraming+`"/>`))
			start = end + 1
		case bytes.HasPrefix(tag, []byte("</")):
			sp.depth--
			if sp.depth == 0 {
				out = append(out, frameElement(sp.buf[start:end+1]))
				start = end + 1
			}
		case tag[len(tag)-2] == '/':
			if sp.depth == 0 {
				out = append(out, frameElement(tag))
				start = end + 1
			}
		default:
			if sp.depth == 0 {
				start = i
			}
			sp.depth++
		}
		i = end + 1
	}
	sp.buf = append(sp.buf[:0], sp.buf[start:]...)
	sp.pos = i - start
	return out
}

// tagEnd returns the index of the '>' closing the tag that starts at i,
// skipping quoted attribute values; -1 if it is not all there yet.
func tagEnd(b []byte, i int) int {
	var quote byte
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return j
		}
	}
	return -1
}

// openFrame turns our stream header into <open/>.
func openFrame(tag []byte) []byte {
	var b strings.Builder
	b.WriteString(`<open xmlns="` + nsFraming + `"`)
	d := xml.NewDecoder(bytes.NewReader(append(append([]byte(nil), tag...), []byte("</stream:stream>")...)))
	if tok, err := d.Token(); err == nil {
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				switch {
				case a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "id" || a.Name.Local == "version"):
					b.WriteString(" " + a.Name.Local + `="` + AttrEscape(a.Value) + `"`)
				case a.Name.Local == "lang":
					b.WriteString(` xml:lang="` + AttrEscape(a.Value) + `"`)
				}
			}
		}
	}
	b.WriteString("/>")
	return []byte(b.String())
}

// frameElement makes a top-level element a document of its own: it
// declares the namespace the stream header declared for it.
func frameElement(el []byte) []byte {
	end := tagEnd(el, 0)
	start := el[:end+1]
	name := start[1:]
	if k := bytes.IndexAny(name, " />"); k >= 0 {
		name = name[:k]
	}
	var decl string
	switch {
	case bytes.HasPrefix(name, []byte("stream:")):
		decl = ` xmlns:stream="` + nsStream + `"`
	case !bytes.Contains(start, []byte("xmlns=")):
		decl = ` xmlns="` + nsClient + `"`
	default:
		return append([]byte(nil), el...)
	}
	out := make([]byte, 0, len(el)+len(decl))
	out = append(out, el[:1+len(name)]...)
	out = append(out, decl...)
	out = append(out, el[1+len(name):]...)
	return out
}
