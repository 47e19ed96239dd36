//go:build e2e

package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// A deliberately small XMPP client for the tests that need exact control
// of the wire (stream management acks around a crash): direct TLS, SASL
// PLAIN, resource binding, and raw stanzas in and out.

const (
	nsSM   = "urn:xmpp:sm:3"
	nsMAM  = "urn:xmpp:mam:2"
	nsRSM  = "http://jabber.org/protocol/rsm"
	nsSID  = "urn:xmpp:sid:0"
	nsFwd  = "urn:xmpp:forward:0"
	nsDly  = "urn:xmpp:delay"
	nsCl   = "jabber:client"
	nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"
)

// xnode is any XML element, kept whole.
type xnode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xnode    `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *xnode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (n *xnode) child(space, local string) *xnode {
	if n == nil {
		return nil
	}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

// path follows children by local name (any namespace).
func (n *xnode) path(locals ...string) *xnode {
	for _, l := range locals {
		n = n.child("", l)
	}
	return n
}

func (n *xnode) String() string {
	b, err := xml.Marshal(n)
	if err != nil {
		return fmt.Sprintf("<%s (unmarshalable: %v)>", n.XMLName.Local, err)
	}
	s := string(b)
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}

type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	dec  *xml.Decoder
	wmu  sync.Mutex
	jid  string
}

// dialRaw logs user in on the direct TLS port and binds resource.
func dialRaw(addr, user, password, resource string) (*rawClient, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, ServerName: domain}) // the host's certificate is self-signed
	if err != nil {
		return nil, err
	}
	c := &rawClient{conn: conn, br: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fail := func(format string, args ...any) (*rawClient, error) {
		conn.Close()
		return nil, fmt.Errorf("%s: "+format, append([]any{user}, args...)...)
	}
	feat, err := c.openStream()
	if err != nil {
		return fail("opening the stream: %v", err)
	}
	if mechs := feat.child(nsSASL, "mechanisms"); mechs == nil || !strings.Contains(mechs.String(), "PLAIN") {
		return fail("PLAIN not offered: %s", feat)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if err := c.send(`<auth xmlns='` + nsSASL + `' mechanism='PLAIN'>` + cred + `</auth>`); err != nil {
		return fail("%v", err)
	}
	el, err := c.next()
	if err != nil {
		return fail("reading the SASL outcome: %v", err)
	}
	if el.XMLName.Local != "success" {
		return fail("SASL PLAIN: %s", el)
	}
	if _, err := c.openStream(); err != nil {
		return fail("reopening the stream: %v", err)
	}
	if err := c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`); err != nil {
		return fail("%v", err)
	}
	el, err = c.next()
	if err != nil {
		return fail("reading the bind result: %v", err)
	}
	if el.attr("type") != "result" || el.path("bind", "jid") == nil {
		return fail("bind: %s", el)
	}
	c.jid = strings.TrimSpace(el.path("bind", "jid").Text)
	conn.SetDeadline(time.Time{})
	return c, nil
}

// openStream sends a stream header and returns the server's features.
func (c *rawClient) openStream() (*xnode, error) {
	if err := c.send(`<?xml version='1.0'?><stream:stream to='` + domain + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`); err != nil {
		return nil, err
	}
	c.dec = xml.NewDecoder(c.br)
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return nil, fmt.Errorf("expected <stream:stream>, got <%s>", se.Name.Local)
			}
			break
		}
	}
	feat, err := c.next()
	if err != nil {
		return nil, err
	}
	if feat.XMLName.Local != "features" {
		return nil, fmt.Errorf("expected <stream:features>, got %s", feat)
	}
	return feat, nil
}

func (c *rawClient) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := io.WriteString(c.conn, s)
	return err
}

// next reads the next top-level element; io.EOF when the stream ends.
func (c *rawClient) next() (*xnode, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := new(xnode)
			if err := c.dec.DecodeElement(n, &t); err != nil {
				return nil, err
			}
			if n.XMLName.Local == "error" && n.XMLName.Space == "http://etherx.jabber.org/streams" {
				return nil, fmt.Errorf("stream error: %s", n)
			}
			return n, nil
		case xml.EndElement:
			return nil, io.EOF
		}
	}
}

// nextUntil reads elements until one satisfies pred, handing the others
// to skip (which may be nil), within d.
func (c *rawClient) nextUntil(d time.Duration, pred func(*xnode) bool, skip func(*xnode)) (*xnode, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if pred(el) {
			return el, nil
		}
		if skip != nil {
			skip(el)
		}
	}
}

func (c *rawClient) close() {
	c.send(`</stream:stream>`)
	c.conn.Close()
}

func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// archived is one message from a MAM query.
type archived struct {
	id, from, to, body, stamp string
}

// mamAll pages through the whole archive of c (with 'with', if given),
// forward with RSM after, and returns it oldest first. Other stanzas that
// arrive meanwhile go to skip.
func (c *rawClient) mamAll(with string, skip func(*xnode)) ([]archived, error) {
	var out []archived
	after := ""
	for page := 1; page <= 50; page++ {
		qid := fmt.Sprintf("mq%d", page)
		form := `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>` + nsMAM + `</value></field>`
		if with != "" {
			form += `<field var='with'><value>` + xmlText(with) + `</value></field>`
		}
		form += `</x>`
		set := `<set xmlns='` + nsRSM + `'><max>100</max>`
		if after != "" {
			set += `<after>` + xmlText(after) + `</after>`
		}
		set += `</set>`
		if err := c.send(`<iq type='set' id='` + qid + `'><query xmlns='` + nsMAM + `' queryid='` + qid + `'>` + form + set + `</query></iq>`); err != nil {
			return out, err
		}
		var n int
		res, err := c.nextUntil(15*time.Second, func(el *xnode) bool {
			return el.XMLName.Local == "iq" && el.attr("id") == qid
		}, func(el *xnode) {
			r := el.child(nsMAM, "result")
			if el.XMLName.Local != "message" || r == nil || r.attr("queryid") != qid {
				if skip != nil {
					skip(el)
				}
				return
			}
			m := r.path("forwarded", "message")
			a := archived{id: r.attr("id")}
			if d := r.path("forwarded", "delay"); d != nil {
				a.stamp = d.attr("stamp")
			}
			if m != nil {
				a.from, a.to = m.attr("from"), m.attr("to")
				if b := m.child("", "body"); b != nil {
					a.body = b.Text
				}
			}
			out = append(out, a)
			n++
		})
		if err != nil {
			return out, fmt.Errorf("MAM query %s: %w", qid, err)
		}
		if res.attr("type") != "result" {
			return out, fmt.Errorf("MAM query %s failed: %s", qid, res)
		}
		fin := res.child(nsMAM, "fin")
		if fin == nil {
			return out, fmt.Errorf("MAM query %s: no <fin/>: %s", qid, res)
		}
		if c := fin.attr("complete"); c == "true" || c == "1" || n == 0 {
			return out, nil
		}
		last := fin.path("set", "last")
		if last == nil {
			return out, errors.New("MAM page not complete and without RSM <last/>")
		}
		after = last.Text
	}
	return out, errors.New("MAM: still not complete after 50 pages")
}
