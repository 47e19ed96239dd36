package xmppsrv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage/memstore"
)

// acceptAll lets any password in: the benchmarks measure routing, not
// PBKDF2.
type acceptAll struct{}

func (acceptAll) CheckPassword(context.Context, string, string) error { return nil }

// benchServer serves a domain of n chat-enabled users (user1..userN) over
// in-process pipes, with the domain roster on.
func benchServer(b *testing.B, n int) *Server {
	dir := memdir.New()
	for i := 1; i <= n; i++ {
		if err := dir.AddUser(fmt.Sprintf("user%d@%s", i, domain), fmt.Sprintf("User %d", i), "x", true); err != nil {
			b.Fatal(err)
		}
	}
	store := memstore.New()
	cache := account.NewCache(dir, time.Hour)
	srv, err := New(Config{
		Domains:          []string{domain},
		AllowUnencrypted: true,
		ReadRate:         -1, // measure the server, not the flood limit
		Directory:        cache,
		Auth:             acceptAll{},
		Store:            store,
		Roster:           roster.New(roster.Config{Store: store, Directory: cache, DomainRoster: true}),
		Chat:             chat.New(chat.Config{Directory: cache, Store: store, Local: func(d string) bool { return d == domain }}),
		QueueLength:      4096,
		// The benchmark clients read but never answer pings; a slow setup
		// on a loaded machine must not get them disconnected as dead.
		IdleTimeout: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv
}

// pipeLogin opens an in-process connection, authenticates and binds.
func pipeLogin(b testing.TB, srv *Server, user, resource string) *client {
	cs, ss := net.Pipe()
	go srv.ServeConn(ss, false)
	c := &client{t: b, conn: cs}
	c.open()
	if el := c.authPlain(user, "x"); el.Local != "success" {
		b.Fatalf("login %s: %s", user, el.Bytes(""))
	}
	c.open()
	c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource)
	if el := c.next(); el.Get("type") != "result" {
		b.Fatalf("bind %s: %s", user, el.Bytes(nsClient))
	}
	c.jid = user + "@" + domain + "/" + resource
	return c
}

// BenchmarkDomainRoster10k measures what a domain of 10,000 users costs:
// fetching the whole roster at login, the versioned login that skips it
// (XEP-0237), and one presence change fanned out to everyone online.
func BenchmarkDomainRoster10k(b *testing.B) {
	const n = 10000
	srv := benchServer(b, n)
	c := pipeLogin(b, srv, "user1", "bench")
	c.send(`<iq type='get' id='warm'><query xmlns='jabber:iq:roster'/></iq>`)
	warm := c.next()
	ver := warm.Child(nsRoster, "query").Get("ver")
	items := len(warm.Child(nsRoster, "query").Elements())
	if items != n-1 {
		b.Fatalf("roster has %d items, want %d", items, n-1)
	}
	b.Run("roster-get-full", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c.send(`<iq type='get' id='r%d'><query xmlns='jabber:iq:roster'/></iq>`, i)
			if el := c.next(); len(el.Child(nsRoster, "query").Elements()) != n-1 {
				b.Fatal("short roster")
			}
		}
		b.ReportMetric(float64(len(warm.Bytes(nsClient))), "roster-bytes")
	})
	b.Run("roster-get-versioned", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c.send(`<iq type='get' id='v%d'><query xmlns='jabber:iq:roster' ver='%s'/></iq>`, i, ver)
			if el := c.next(); el.Child(nsRoster, "query") != nil {
				b.Fatal("versioned get returned the roster")
			}
		}
	})
	b.Run("login-versioned", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			l := pipeLogin(b, srv, "user2", "r"+strconv.Itoa(i))
			l.send(`<iq type='get' id='v'><query xmlns='jabber:iq:roster' ver='%s'/></iq>`, ver)
			l.next()
			l.conn.Close()
		}
	})
	// From here on nothing reads c's replies, but c is online and receives
	// every presence change of its 9,999 contacts (its own reflected too):
	// unread, its queue would fill and the server would rightly disconnect
	// it as a slow client, leaving the fan-out rounds waiting for nothing.
	c.conn.SetReadDeadline(time.Time{})
	go io.Copy(io.Discard, c.conn)
	round := 0
	for _, online := range []int{1000, n - 1} {
		b.Run(fmt.Sprintf("presence-fanout-online=%d", online), func(b *testing.B) {
			var got atomic.Int64
			var wg sync.WaitGroup
			conns := make([]net.Conn, 0, online)
			// The testing package calls this function more than once (to
			// size b.N): each call waits for the last one's sessions to
			// end and uses its own resource, so no login replaces a
			// session of an earlier call that is still closing.
			round++
			resource := "fan" + strconv.Itoa(round)
			waitSessions(b, srv, 1)
			for i := 2; i <= online+1; i++ {
				user := "user" + strconv.Itoa(i)
				l := pipeLogin(b, srv, user, resource)
				// Mark the session available without broadcasting, so the
				// setup is O(n), not O(n²) presence deliveries. The bind
				// result reaches the client just before the session is
				// routable: wait for it to be.
				s := waitBound(b, srv, jid.MustParse(user+"@"+domain+"/"+resource))
				s.pmu.Lock()
				s.available = true
				s.presBytes = []byte(`<presence from="` + s.full.String() + `"/>`)
				s.pmu.Unlock()
				conns = append(conns, l.conn)
				wg.Add(1)
				go drainCount(l.conn, []byte("<status>fan"), &got, &wg)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				want := int64(online) * int64(i+1)
				c.send(`<presence><show>away</show><status>fan %d</status></presence>`, i)
				deadline := time.Now().Add(2 * time.Minute)
				for got.Load() < want {
					if time.Now().After(deadline) {
						b.Fatalf("presence %d reached %d of %d recipients in 2 minutes; %d sessions on the server", i, got.Load()-int64(online)*int64(i), online, srv.Sessions())
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(online), "ns/recipient")
			for _, cn := range conns {
				cn.Close()
			}
			wg.Wait()
		})
	}
}

// waitBound returns the session bound to full once the router has it.
func waitBound(b *testing.B, srv *Server, full jid.JID) *Session {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, s := range srv.router.Resources(full.Bare().String()) {
			if s.full == full {
				return s
			}
		}
		time.Sleep(20 * time.Microsecond)
	}
	b.Fatalf("%s never became routable", full)
	return nil
}

// waitSessions waits until the server holds n connections.
func waitSessions(b *testing.B, srv *Server, n int) {
	deadline := time.Now().Add(time.Minute)
	for srv.Sessions() != n {
		if time.Now().After(deadline) {
			b.Fatalf("%d sessions still open a minute after their clients closed; want %d", srv.Sessions(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// drainCount reads everything from c and counts occurrences of marker.
// The harness client's reads leave a read deadline on c; it is cleared
// first, or a drain started long after login stops at once and the server
// rightly drops the client as unreachable once its write times out.
func drainCount(c net.Conn, marker []byte, n *atomic.Int64, wg *sync.WaitGroup) {
	defer wg.Done()
	c.SetReadDeadline(time.Time{})
	buf := make([]byte, 32<<10)
	carry := 0
	for {
		m, err := c.Read(buf[carry:])
		if err != nil {
			return
		}
		data := buf[:carry+m]
		n.Add(int64(bytes.Count(data, marker)))
		carry = min(len(marker)-1, len(data))
		copy(buf, data[len(data)-carry:])
	}
}

// BenchmarkMessageRoute measures one chat message from one session to
// another's bare JID through the whole edge: parse, route, serialise.
func BenchmarkMessageRoute(b *testing.B) {
	srv := benchServer(b, 2)
	a := pipeLogin(b, srv, "user1", "a")
	r := pipeLogin(b, srv, "user2", "b")
	a.send(`<presence/>`)
	r.send(`<presence/>`)
	var got atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go drainCount(r.conn, []byte("<body>"), &got, &wg)
	go drainCount(a.conn, []byte("<body>"), new(atomic.Int64), &wg)
	msg := []byte(`<message type='chat' to='user2@example.test' id='x'><body>hello there, how are you today? xb 1 2 3</body></message>`)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.conn.Write(msg)
	}
	for got.Load() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
}
