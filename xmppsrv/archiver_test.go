package xmppsrv

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage/boltstore"
)

// TestArchiverHoldsFastSender: a client that sends much faster than its
// messages are stored and delivered is held up once it has its limit in
// the archiver, rather than have the archiver burst more at the recipient
// than the recipient's queue holds, which would disconnect the recipient
// (reading all along) as too slow and lose what was queued for it.
func TestArchiverHoldsFastSender(t *testing.T) {
	dir := memdir.New()
	dir.AddUser("user1@"+domain, "U1", "x", true)
	dir.AddUser("user2@"+domain, "U2", "x", true)
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cache := account.NewCache(dir, time.Hour)
	srv, err := New(Config{Domains: []string{domain}, AllowUnencrypted: true, ReadRate: -1, Directory: cache, Auth: acceptAll{}, Store: store,
		Roster: roster.New(roster.Config{Store: store, Directory: cache, DomainRoster: true}),
		Chat:   chat.New(chat.Config{Directory: cache, Store: store, Archive: store, Local: func(d string) bool { return d == domain }})})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	a := pipeLogin(t, srv, "user1", "a")
	r := pipeLogin(t, srv, "user2", "b")
	a.send(`<presence/>`)
	r.send(`<presence/>`)
	var got atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go drainCount(r.conn, []byte("<body>"), &got, &wg)
	go drainCount(a.conn, []byte("<body>"), new(atomic.Int64), &wg)
	const n = 20000 // QueueLength is 2048, an archiver batch up to 4096
	msg := []byte(`<message type='chat' to='user2@example.test'><body>hello</body></message>`)
	go func() {
		for range n {
			if _, err := a.conn.Write(msg); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < n && time.Now().Before(deadline) && srv.m.SlowClients.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if got.Load() != n || srv.m.SlowClients.Load() != 0 {
		t.Fatalf("recipient got %d of %d messages; %d stanzas dropped, %d clients disconnected as slow",
			got.Load(), n, srv.m.QueueDrops.Load(), srv.m.SlowClients.Load())
	}
}
