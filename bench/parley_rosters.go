//go:build ignore

// parley_rosters writes pre-made rosters into a stopped Parley's bbolt store,
// for xmppbench's presence mode: PREFIX1..PREFIXN in groups of K, every
// member of a group subscribed both ways to every other member
// (subscription "both"), as servers/prosody.sh and servers/ejabberd.sh
// "rosters N K PREFIX" do for the anchors. Without it the tool sets rosters
// up by subscription exchange (works with Parley, ~15 s for 500/50).
//
// The store must not be open elsewhere (stop the host first: bbolt locks the
// file). Writes go through storage/boltstore, the store Parley itself uses,
// with NoSync (no fsync per item; a provisioning run, not a server).
//
//	go run ./bench/parley_rosters.go -db /tmp/xb-parley/data/parley.db -n 500 -k 50 -prefix puser
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
)

func main() {
	db := flag.String("db", "/tmp/xb-parley/data/parley.db", "Parley's bbolt file (<data>/parley.db)")
	n := flag.Int("n", 500, "users PREFIX1..PREFIXn")
	k := flag.Int("k", 50, "group size")
	prefix := flag.String("prefix", "puser", "user name prefix")
	domain := flag.String("domain", "localhost", "domain")
	flag.Parse()

	st, err := boltstore.Open(*db, &boltstore.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	addr := func(i int) string { return fmt.Sprintf("%s%d@%s", *prefix, i, *domain) }
	t0 := time.Now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		items int
		first error
	)
	for i := 1; i <= *n; i++ {
		wg.Go(func() {
			lo := (i-1) / *k * *k + 1
			hi := min(lo+*k-1, *n)
			for j := lo; j <= hi; j++ {
				if j == i {
					continue
				}
				_, err := st.PutRosterItem(ctx, addr(i), storage.RosterItem{Contact: addr(j), Subscription: storage.SubBoth})
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					items++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := st.Close(); err != nil && first == nil {
		first = err
	}
	if first != nil {
		log.Fatal(first)
	}
	fmt.Printf("parley: wrote %d roster items (%d users in groups of %d, prefix %s) to %s in %v\n",
		items, *n, *k, *prefix, *db, time.Since(t0).Round(time.Millisecond))
}
