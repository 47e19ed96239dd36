package roster

import (
	"fmt"
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
)

// benchService serves a domain of n chat-enabled users and 20 aliases; the
// owner also has a few contacts of other domains and a hidden colleague.
func benchService(b *testing.B, n int) (*Service, jid.JID) {
	entries := make([]account.Entry, 0, n+20)
	for i := range n {
		entries = append(entries, account.Entry{
			Address:     fmt.Sprintf("user%05d@big.example", i),
			Name:        fmt.Sprintf("User %05d", n-i),
			ChatEnabled: i%10 != 9,
		})
	}
	for i := range 20 {
		entries = append(entries, account.Entry{Address: fmt.Sprintf("list%02d@big.example", i), Kind: account.Alias})
	}
	dir := &sliceDir{}
	dir.set(entries)
	s := New(Config{Store: newMemRosters(), Directory: account.NewCache(dir, time.Hour), DomainRoster: true})
	owner := jid.MustParse("user00000@big.example")
	for i := range 5 {
		must[Item](b)(s.Set(ctx, owner, jid.MustParse(fmt.Sprintf("friend%d@elsewhere.example", i)), "Friend", []string{"Friends"}))
	}
	must[RemoveResult](b)(s.Remove(ctx, owner, jid.MustParse("user00001@big.example")))
	return s, owner
}

func BenchmarkGetDomain10k(b *testing.B) {
	s, owner := benchService(b, 10_000)
	items, _, err := s.Get(ctx, owner) // warm the directory cache and index
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Get(ctx, owner); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(items)), "items")
}

func BenchmarkVersionDomain10k(b *testing.B) {
	s, owner := benchService(b, 10_000)
	if _, err := s.Version(ctx, owner); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Version(ctx, owner); err != nil {
			b.Fatal(err)
		}
	}
}
