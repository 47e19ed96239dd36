package roster

import (
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/memstore"
)

// The service over the shipped in-memory store, not only over the fake.
func TestWithMemstore(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	dir := &sliceDir{}
	dir.set(domainEntries())
	s := New(Config{Store: st, Directory: account.NewCache(dir, time.Hour), DomainRoster: true})

	_, v0 := get(t, s, alice)
	must[Outcome](t)(s.Outbound(ctx, alice, dave, Subscribe))
	must[Outcome](t)(s.Inbound(ctx, dave, alice, Subscribe, "hi"))
	if reqs := must[[]Request](t)(s.Pending(ctx, dave)); len(reqs) != 1 || reqs[0].From != alice {
		t.Fatalf("Pending = %+v", reqs)
	}
	must[Outcome](t)(s.Outbound(ctx, dave, alice, Subscribed))
	out := must[Outcome](t)(s.Inbound(ctx, alice, dave, Subscribed, ""))
	if out.Push == nil || out.Push.Subscription != storage.SubTo {
		t.Fatalf("Inbound subscribed: %+v", out)
	}
	must[RemoveResult](t)(s.Remove(ctx, alice, bob))
	items, v1 := get(t, s, alice)
	if v1 == v0 || show(items) != ""+
		"info@example.com|Info desk|Aliases|both|domain\n"+
		"sales@example.com|Sales|Aliases|both|domain\n"+
		"zoe@example.com|Zoe Zimmer|example.com|both|domain\n"+
		"dave@other.org|||to\n" {
		t.Fatalf("roster %q:\n%s", v1, show(items))
	}
}
