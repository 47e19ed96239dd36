package xmppsrv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/chat"
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
		Directory:        cache,
		Auth:             acceptAll{},
		Store:            store,
		Roster:           roster.New(roster.Config{Store: store, Directory: cache, DomainRoster: true}),
		Chat:             chat.New(chat.Config{Directory: cache, Store: store, Local: func(d string) bool { return d == domain }}),
		QueueLength:      4096,
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
	for _, online := range []int{1000, n - 1} {
		b.Run(fmt.Sprintf("presence-fanout-online=%d", online), func(b *testing.B) {
			var got atomic.Int64
			var wg sync.WaitGroup
			conns := make([]net.Conn, 0, online)
			for i := 2; i <= online+1; i++ {
				l := pipeLogin(b, srv, "user"+strconv.Itoa(i), "fan")
				// Mark the session available without broadcasting, so the
				// setup is O(n), not O(n²) presence deliveries.
				for _, s := range srv.router.Resources("user" + strconv.Itoa(i) + "@" + domain) {
					s.pmu.Lock()
					s.available = true
					s.presBytes = []byte(`<presence from="` + s.full.String() + `"/>`)
					s.pmu.Unlock()
				}
				conns = append(conns, l.conn)
				wg.Add(1)
				go drainCount(l.conn, []byte("<status>fan"), &got, &wg)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				want := int64(online) * int64(i+1)
				c.send(`<presence><show>away</show><status>fan %d</status></presence>`, i)
				for got.Load() < want {
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

// drainCount reads everything from c and counts occurrences of marker.
func drainCount(c net.Conn, marker []byte, n *atomic.Int64, wg *sync.WaitGroup) {
	defer wg.Done()
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
