//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Federation (issue 9): example hosts for different domains on different
// loopback addresses, and Debian's Prosody, federate with each other.

// fedHost is an example host for one domain with federation on.
type fedHost struct {
	*host
	domain string
	s2s    string
}

var fedPasswords = map[string]string{"alice": "alice-Fed-Pa55", "bob": "bob-Fed-Pa55"}

// writeFedUsers writes alice and bob of domain to path.
func writeFedUsers(t *testing.T, path, domain string) {
	t.Helper()
	type user struct {
		Address     string `json:"address"`
		Name        string `json:"name"`
		Password    string `json:"password"`
		ChatEnabled bool   `json:"chat_enabled"`
	}
	var users []user
	for _, u := range []string{"alice", "bob"} {
		users = append(users, user{u + "@" + domain, strings.ToUpper(u[:1]) + u[1:] + " of " + domain, fedPasswords[u], true})
	}
	b, _ := json.Marshal(map[string]any{"users": users})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeAddrsOn returns n free TCP addresses on ip.
func freeAddrsOn(t *testing.T, ip string, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatalf("listen on %s (loopback aliases are needed for federation tests): %v", ip, err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// startFedHost runs an example host for domain on ip with federation on;
// overrides tell it where the other servers are.
func startFedHost(t *testing.T, domain, ip, s2sAddr string, overrides map[string]string, extra ...string) *fedHost {
	t.Helper()
	dir := t.TempDir()
	h := &host{data: filepath.Join(dir, "data"), users: filepath.Join(dir, "users.json"), log: new(syncBuffer), exited: make(chan struct{})}
	writeFedUsers(t, h.users, domain)
	addrs := freeAddrsOn(t, ip, 3)
	h.xmpp, h.xmpps, h.https = addrs[0], addrs[1], addrs[2]
	args := []string{
		"-domain", domain, "-data", h.data, "-users", h.users,
		"-xmpp-addr", h.xmpp, "-xmpps-addr", h.xmpps, "-http-addr", h.https,
		"-domain-roster=false", "-log-level", "debug", "-disable-media",
		"-federation", "-s2s-addr", s2sAddr,
	}
	for d, a := range overrides {
		args = append(args, "-s2s-override", d+"="+a)
	}
	h.cmd = exec.Command(hostBin, append(args, extra...)...)
	h.cmd.Stdout = h.log
	h.cmd.Stderr = h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start host: %v", err)
	}
	go func() {
		h.exitErr = h.cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() { h.stop(t) })
	waitFedListening(t, h, h.xmpp)
	waitFedListening(t, h, s2sAddr)
	return &fedHost{host: h, domain: domain, s2s: s2sAddr}
}

func waitFedListening(t *testing.T, h *host, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-h.exited:
			t.Fatalf("host exited before listening on %s: %v", addr, h.exitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s after 20s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fedSlix runs a scenario of e2e/slix/federation.py between two servers.
func fedSlix(t *testing.T, a, b [3]string, scenario string, args ...string) {
	t.Helper()
	requireSlixmpp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{
		filepath.Join(moduleRoot, "e2e", "slix", "federation.py"),
		"--a", strings.Join(a[:], ","), "--b", strings.Join(b[:], ","), "--timeout", "100", scenario,
	}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("federation scenario %q failed: %v\n%s", scenario, err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

func (h *fedHost) env() [3]string { return [3]string{h.xmpp, h.users, h.domain} }

// twoParleys starts a.test on 127.0.0.2 and b.test on 127.0.0.3, each
// told where the other is.
func twoParleys(t *testing.T) (a, b *fedHost) {
	sa := freeAddrsOn(t, "127.0.0.2", 1)[0]
	sb := freeAddrsOn(t, "127.0.0.3", 1)[0]
	a = startFedHost(t, "a.test", "127.0.0.2", sa, map[string]string{"b.test": sb})
	b = startFedHost(t, "b.test", "127.0.0.3", sb, map[string]string{"a.test": sa})
	return a, b
}

func TestFederationBetweenTwoParleys(t *testing.T) {
	a, b := twoParleys(t)
	fedSlix(t, a.env(), b.env(), "contacts", "alice", "bob")
	for _, h := range []*fedHost{a, b} {
		if !strings.Contains(h.log.String(), "inbound stream authenticated by dialback") {
			t.Errorf("%s: no stream was authenticated by dialback (self-signed certificates)", h.domain)
		}
		// Each side's outbound stream runs with stream management
		// (XEP-0198 acknowledgements), which the other enabled.
		if !regexp.MustCompile(`msg="s2s: stream management" .*on=true`).MatchString(h.log.String()) ||
			!strings.Contains(h.log.String(), "stream management enabled by the peer") {
			t.Errorf("%s: a stream without stream management", h.domain)
		}
		if strings.Contains(h.log.String(), "bad acknowledgement") {
			t.Errorf("%s: an acknowledgement was refused", h.domain)
		}
	}
}

func TestFederationRemoteServerDown(t *testing.T) {
	sa := freeAddrsOn(t, "127.0.0.2", 1)[0]
	dead := freeAddrsOn(t, "127.0.0.3", 1)[0] // nobody listens there
	a := startFedHost(t, "a.test", "127.0.0.2", sa, map[string]string{"down.test": dead})
	fedSlix(t, a.env(), a.env(), "down", "alice", "bob@down.test")
}

// TestFederationForgedDialback connects to b.test as if it were a.test and
// offers a made-up dialback key: b.test asks a.test's real server, which
// denies having issued it, and refuses the stream; stanzas on it end it.
func TestFederationForgedDialback(t *testing.T) {
	_, b := twoParleys(t)
	c, err := net.DialTimeout("tcp", b.s2s, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var d *xml.Decoder
	open := func(conn net.Conn) (id string, features string) {
		fmt.Fprint(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>`)
		d = xml.NewDecoder(bufio.NewReader(conn))
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				for _, a := range se.Attr {
					if a.Name.Local == "id" {
						id = a.Value
					}
				}
				break
			}
		}
		return id, nextXML(t, d)
	}
	_, feats := open(c)
	if !strings.Contains(feats, "starttls") {
		t.Fatalf("features without STARTTLS: %s", feats)
	}
	fmt.Fprint(c, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if p := nextXML(t, d); !strings.Contains(p, "proceed") {
		t.Fatalf("STARTTLS answered with %s", p)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	id, feats := open(tc)
	if !strings.Contains(feats, "urn:xmpp:features:dialback") {
		t.Fatalf("dialback not offered: %s", feats)
	}
	fmt.Fprintf(tc, `<db:result from='a.test' to='b.test'>%064x</db:result>`, 42)
	res := nextXML(t, d)
	if !strings.Contains(res, `type="invalid"`) {
		t.Fatalf("forged dialback (stream %s) answered with %s", id, res)
	}
	fmt.Fprint(tc, `<message from='alice@a.test' to='bob@b.test' type='chat'><body>forged</body></message>`)
	if se := nextXML(t, d); !strings.Contains(se, "not-authorized") {
		t.Fatalf("stanza on the refused stream answered with %s", se)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.log.String(), "forged dialback refused") {
		if time.Now().After(deadline) {
			t.Fatal("b.test did not log the forged dialback")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nextXML returns the next top-level element as text.
func nextXML(t *testing.T, d *xml.Decoder) string {
	t.Helper()
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			var n struct {
				XMLName xml.Name
				Attrs   []xml.Attr `xml:",any,attr"`
				Inner   string     `xml:",innerxml"`
			}
			if err := d.DecodeElement(&n, &se); err != nil {
				t.Fatal(err)
			}
			s := "<" + n.XMLName.Local + ` xmlns="` + n.XMLName.Space + `"`
			for _, a := range n.Attrs {
				s += " " + a.Name.Local + `="` + a.Value + `"`
			}
			return s + ">" + n.Inner + "</" + n.XMLName.Local + ">"
		}
	}
}

// TestFederationDirectTLS: the same conversation over direct-TLS server
// streams (XEP-0368, -s2ss-addr) in both directions.
func TestFederationDirectTLS(t *testing.T) {
	ta := freeAddrsOn(t, "127.0.0.2", 2)
	tb := freeAddrsOn(t, "127.0.0.3", 2)
	a := startFedHost(t, "a.test", "127.0.0.2", ta[0], map[string]string{"b.test": "tls://" + tb[1]}, "-s2ss-addr", ta[1])
	b := startFedHost(t, "b.test", "127.0.0.3", tb[0], map[string]string{"a.test": "tls://" + ta[1]}, "-s2ss-addr", tb[1])
	fedSlix(t, a.env(), b.env(), "contacts", "alice", "bob")
}

// TestFederationDenyList: a.test refuses b.test; a message either way
// comes back to its sender with remote-server-not-found.
func TestFederationDenyList(t *testing.T) {
	sa := freeAddrsOn(t, "127.0.0.2", 1)[0]
	sb := freeAddrsOn(t, "127.0.0.3", 1)[0]
	a := startFedHost(t, "a.test", "127.0.0.2", sa, map[string]string{"b.test": sb}, "-s2s-deny", "b.test")
	b := startFedHost(t, "b.test", "127.0.0.3", sb, map[string]string{"a.test": sa})
	fedSlix(t, a.env(), a.env(), "down", "alice", "bob@b.test")
	fedSlix(t, b.env(), b.env(), "down", "bob", "alice@a.test")
	if !strings.Contains(a.log.String(), "not allowed") {
		t.Error("a.test did not log the refused inbound stream")
	}
}
