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

// BenchmarkMessageRouteArchivedBolt is BenchmarkMessageRoute with history
// on, over the bbolt store with fsync: the archiver's batching is what
// keeps it near the unarchived figure.
func BenchmarkMessageRouteArchivedBolt(b *testing.B) {
	dir := memdir.New()
	dir.AddUser("user1@"+domain, "U1", "x", true)
	dir.AddUser("user2@"+domain, "U2", "x", true)
	store, err := boltstore.Open(filepath.Join(b.TempDir(), "p.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	cache := account.NewCache(dir, time.Hour)
	srv, _ := New(Config{Domains: []string{domain}, AllowUnencrypted: true, ReadRate: -1, Directory: cache, Auth: acceptAll{}, Store: store,
		Roster: roster.New(roster.Config{Store: store, Directory: cache, DomainRoster: true}),
		Chat:   chat.New(chat.Config{Directory: cache, Store: store, Archive: store, Local: func(d string) bool { return d == domain }})})
	defer srv.Shutdown(context.Background())
	a := pipeLogin(b, srv, "user1", "a")
	r := pipeLogin(b, srv, "user2", "b")
	a.send(`<presence/>`)
	r.send(`<presence/>`)
	var got atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go drainCount(r.conn, []byte("<body>"), &got, &wg)
	go drainCount(a.conn, []byte("<body>"), new(atomic.Int64), &wg)
	msg := []byte(`<message type='chat' to='user2@example.test' id='x'><body>xb 12 3456 1763771234567890123</body></message>`)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.conn.Write(msg)
	}
	for got.Load() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
}
