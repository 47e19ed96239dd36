package boltstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
)

// TestScale builds an archive of 1,000,000 messages (1,000 owners with
// 1,000 messages each, over a year, with about 20 contacts each) and
// measures the queries a chat client makes most. It takes a few minutes
// and a gigabyte of disk, so it runs only when asked:
//
//	PARLEY_SCALE=1 go test -run TestScale -v -timeout 1h ./storage/boltstore
//
// The file is built with NoSync and large batched appends (fsync is not
// what this measures; BenchmarkStore is), then reopened as shipped. The
// queries run against a file the OS has just written, so they show the
// code and bbolt's B+trees with a warm page cache, not a cold disk.
func TestScale(t *testing.T) {
	if os.Getenv("PARLEY_SCALE") != "1" {
		t.Skip("set PARLEY_SCALE=1 to build and query a 1,000,000-message archive")
	}
	const (
		owners   = 1000
		perOwner = 1000
		contacts = 20
		perCall  = 10 // owners per AppendMessages call: 10,000 messages
		queries  = 1000
	)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scale.db")
	owner := func(i int) string { return fmt.Sprintf("user%04d@example.com", i) }
	contact := func(o, k int) string { return owner((o + 1 + k*37) % owners) }

	// Build.
	st := open(t, path, &boltstore.Options{NoSync: true})
	start := time.Now()
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var words, bodyBytes int
	for o := 0; o < owners; o += perCall {
		var batch []storage.ArchivedMessage
		for u := o; u < o+perCall; u++ {
			msgs := scaleArchive(owner(u), func(k int) string { return contact(u, k) }, contacts, perOwner, end, uint64(u))
			for _, m := range msgs {
				words += len(strings.Fields(m.Body))
				bodyBytes += len(m.Body)
			}
			batch = append(batch, msgs...)
		}
		if err := st.AppendMessages(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	logged := time.Since(start)
	// Close waits for the indexer: the build ends when all is indexed.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	build := time.Since(start)
	t.Logf("appends returned after %v (logged; indexed at Close)", logged.Round(time.Millisecond))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	total := owners * perOwner
	t.Logf("built %d messages (%.1f words, %d bytes of body on average) in %v (%.0f messages/s, batches of %d)",
		total, float64(words)/float64(total), bodyBytes/total, build.Round(time.Millisecond),
		float64(total)/build.Seconds(), perCall*perOwner)
	t.Logf("file size: %.0f MiB (%.0f bytes per message)", float64(fi.Size())/(1<<20), float64(fi.Size())/float64(total))

	// Reopen as shipped: bbolt maps the file and reads no more than its
	// meta pages and freelist into the heap.
	st = open(t, path, nil)
	defer st.Close()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("Go heap after opening: %.1f MiB in use, %.1f MiB live objects (the test's own included)",
		float64(ms.HeapInuse)/(1<<20), float64(ms.HeapAlloc)/(1<<20))
	// Other processes share the machine; the load says how far to trust
	// the tails below.
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average: %s (%d CPUs)", strings.TrimSpace(string(b)), runtime.NumCPU())
	}

	rng := rand.New(rand.NewPCG(42, 42))
	measure := func(name string, q func() (int, error)) {
		t.Helper()
		d := make([]time.Duration, queries)
		got := 0
		for i := range d {
			t0 := time.Now()
			n, err := q()
			d[i] = time.Since(t0)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got += n
		}
		slices.Sort(d)
		t.Logf("%-44s p50 %8v  p99 %8v  max %8v  (%.1f messages per query)",
			name, d[len(d)/2].Round(time.Microsecond), d[len(d)*99/100].Round(time.Microsecond),
			d[len(d)-1].Round(time.Microsecond), float64(got)/float64(len(d)))
	}

	measure("latest page of 75, one conversation", func() (int, error) {
		o := rng.IntN(owners)
		msgs, _, err := st.QueryMessages(ctx, owner(o), storage.ArchiveQuery{With: contact(o, rng.IntN(contacts)), Last: true, Max: 75})
		return len(msgs), err
	})
	measure("same, last 30 days only (chat.Recent)", func() (int, error) {
		o := rng.IntN(owners)
		msgs, _, err := st.QueryMessages(ctx, owner(o), storage.ArchiveQuery{
			With: contact(o, rng.IntN(contacts)), Last: true, Max: 75, Start: end.AddDate(0, 0, -30),
		})
		return len(msgs), err
	})
	measure("latest page of 100, whole archive (MAM sync)", func() (int, error) {
		msgs, _, err := st.QueryMessages(ctx, owner(rng.IntN(owners)), storage.ArchiveQuery{Last: true})
		return len(msgs), err
	})
	measure("full text, one word, newest 100", func() (int, error) {
		msgs, _, err := st.QueryMessages(ctx, owner(rng.IntN(owners)), storage.ArchiveQuery{
			Text: scaleWords[rng.IntN(len(scaleWords))], Last: true,
		})
		return len(msgs), err
	})
	measure("full text, two words, newest 100", func() (int, error) {
		msgs, _, err := st.QueryMessages(ctx, owner(rng.IntN(owners)), storage.ArchiveQuery{
			Text: scaleWords[rng.IntN(len(scaleWords))] + " " + scaleWords[rng.IntN(len(scaleWords))], Last: true,
		})
		return len(msgs), err
	})
	measure("full text, most common word, newest 100", func() (int, error) {
		msgs, _, err := st.QueryMessages(ctx, owner(rng.IntN(owners)), storage.ArchiveQuery{Text: scaleWords[0], Last: true})
		return len(msgs), err
	})
	measure("full text, two words, one conversation", func() (int, error) {
		o := rng.IntN(owners)
		msgs, _, err := st.QueryMessages(ctx, owner(o), storage.ArchiveQuery{
			Text: scaleWords[rng.IntN(len(scaleWords))] + " " + scaleWords[rng.IntN(len(scaleWords))],
			With: contact(o, rng.IntN(contacts)), Last: true,
		})
		return len(msgs), err
	})
}

// scaleWords: chat-like words, drawn with a Zipf distribution so a few
// are in many messages and most in few.
var scaleWords = strings.Fields(`the you to and I it a is that of in we
	for on have this be are not with just what can so do at was me but
	get lunch meeting tomorrow today call later thanks ok yes no maybe
	time now good see will know think how about when there here one
	send file review deploy server release build test bug fix branch
	merge ticket friday monday weekend coffee dinner train airport
	flight hotel budget invoice report draft slides demo customer
	contract schedule agenda notes photo video link password laptop
	phone battery update restart network printer office kitchen
	birthday party gift movie game music concert beach garden
	weather rain snow holiday vacation doctor dentist school homework
	groceries milk bread cheese pizza sushi pasta salad wine beer
	football tennis gym run bike car parking bus taxi ferry museum`)

// scaleArchive is owner's archive: n messages over the year before end,
// each with one of the contacts, with IDs like Parley's.
func scaleArchive(owner string, contact func(int) string, contacts, n int, end time.Time, seed uint64) []storage.ArchivedMessage {
	rng := rand.New(rand.NewPCG(seed, 7))
	zipf := rand.NewZipf(rng, 1.1, 2, uint64(len(scaleWords)-1))
	stamps := make([]time.Time, n)
	for i := range stamps {
		stamps[i] = end.Add(-time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
	}
	slices.SortFunc(stamps, func(a, b time.Time) int { return a.Compare(b) })
	msgs := make([]storage.ArchivedMessage, n)
	for i := range msgs {
		var body strings.Builder
		for k := range 3 + rng.IntN(13) {
			if k > 0 {
				body.WriteByte(' ')
			}
			body.WriteString(scaleWords[zipf.Uint64()])
		}
		with := contact(rng.IntN(contacts))
		msgs[i] = storage.ArchivedMessage{
			Owner:    owner,
			ID:       fmt.Sprintf("%012x%04x%08x", stamps[i].UnixMicro(), i&0xffff, rng.Uint32()),
			With:     with,
			Stamp:    stamps[i],
			Outgoing: rng.IntN(2) == 0,
			ClientID: fmt.Sprintf("%08x-%04x", rng.Uint32(), i),
			Body:     body.String(),
			Data: fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s/phone' to='%s' type='chat' id='%08x'>"+
				"<body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%[3]08x'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>",
				owner, with, i, body.String()),
		}
	}
	return msgs
}
