package s2s

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS answers SRV and A queries from a table, on loopback UDP.
type fakeDNS struct {
	srv map[string][]dnsmessage.SRVResource // by query name
	a   map[string][4]byte
}

func (f *fakeDNS) start(t *testing.T) *net.Resolver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.ToLower(q.Name.String())
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			found := false
			switch q.Type {
			case dnsmessage.TypeSRV:
				for _, r := range f.srv[name] {
					found = true
					b.SRVResource(hdr, r)
				}
			case dnsmessage.TypeA:
				if ip, ok := f.a[name]; ok {
					found = true
					b.AResource(hdr, dnsmessage.AResource{A: ip})
				}
			case dnsmessage.TypeAAAA:
				_, found = f.a[name] // no AAAA, but the name exists
			}
			msg, _ := b.Finish()
			if !found && q.Type != dnsmessage.TypeAAAA {
				// NXDOMAIN
				msg[3] = msg[3]&0xf0 | 3
			}
			pc.WriteTo(msg, addr)
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
}

func port(t *testing.T, addr string) uint16 {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// TestDNSDiscovery: _xmpps-server._tcp (direct TLS) and _xmpp-server._tcp
// (STARTTLS) by priority, the domain on 5269 without SRV records, and "."
// meaning no service.
func TestDNSDiscovery(t *testing.T) {
	a := newPeer(t, "a.test", nil, nil)
	b := newPeer(t, "b.test", nil, nil)
	host := dnsmessage.MustNewName("xmpp.b.test.")
	dns := &fakeDNS{
		srv: map[string][]dnsmessage.SRVResource{
			"_xmpps-server._tcp.b.test.":   {{Priority: 5, Weight: 1, Port: port(t, b.tls), Target: host}},
			"_xmpp-server._tcp.b.test.":    {{Priority: 10, Weight: 1, Port: port(t, b.addr), Target: host}},
			"_xmpp-server._tcp.none.test.": {{Priority: 0, Weight: 0, Port: 0, Target: dnsmessage.MustNewName(".")}},
			"_xmpps-server._tcp.a.test.":   {{Priority: 0, Weight: 1, Port: port(t, a.tls), Target: dnsmessage.MustNewName("xmpp.a.test.")}},
		},
		a: map[string][4]byte{"xmpp.b.test.": {127, 0, 0, 1}, "xmpp.a.test.": {127, 0, 0, 1}},
	}
	res := dns.start(t)
	for _, p := range []*peer{a, b} {
		p.srv.cfg.Resolver = res
		p.srv.cfg.Dial = (&net.Dialer{Resolver: res}).DialContext
		p.srv.cfg.Override = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := a.srv.resolve(ctx, "b.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []target{{net.JoinHostPort("xmpp.b.test", strconv.Itoa(int(port(t, b.tls)))), true}, {net.JoinHostPort("xmpp.b.test", strconv.Itoa(int(port(t, b.addr)))), false}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("resolve(b.test) = %v, want %v", got, want)
	}
	if got, err := a.srv.resolve(ctx, "nosrv.test"); err != nil || len(got) != 1 || got[0] != (target{"nosrv.test:5269", false}) {
		t.Fatalf("resolve(nosrv.test) = %v, %v; want the domain on 5269", got, err)
	}
	if _, err := a.srv.resolve(ctx, "none.test"); err == nil {
		t.Fatal(`a "." SRV target should mean no service`)
	}
	// End to end through DNS: the direct-TLS record is used first.
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "via SRV"))
	if got := b.local.expect(t, "message via SRV"); got.ChildText(nsClient, "body") != "via SRV" {
		t.Fatalf("got %s", got.Bytes(""))
	}
	if !a.log.has("addr=xmpp.b.test:" + strconv.Itoa(int(port(t, b.tls))) + " direct=true") {
		t.Errorf("the direct-TLS SRV record was not used first: %v", a.log.msgs)
	}
	a.srv.Send(message("alice@a.test/x", "bob@none.test", "nowhere"))
	if got := a.local.expect(t, "bounce"); errorCondition(got) != "remote-server-not-found" {
		t.Fatalf("bounce %s", got.Bytes(nsClient))
	}
}
