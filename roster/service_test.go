package roster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

var (
	ctx   = context.Background()
	alice = jid.MustParse("alice@example.com")
	bob   = jid.MustParse("bob@example.com")
	carol = jid.MustParse("carol@example.com") // not chat-enabled
	zoe   = jid.MustParse("zoe@example.com")
	sales = jid.MustParse("sales@example.com")
	info  = jid.MustParse("info@example.com")
	dave  = jid.MustParse("dave@other.org")
	erin  = jid.MustParse("erin@third.net")
)

func domainEntries() []account.Entry {
	return []account.Entry{
		{Address: "Zoe@example.com", Name: "Zoe Zimmer", ChatEnabled: true},
		{Address: "alice@example.com", Name: "Alice", ChatEnabled: true},
		{Address: "bob@example.com", Name: "Bob Builder", ChatEnabled: true},
		{Address: "carol@example.com", Name: "Carol", ChatEnabled: false},
		{Address: "sales@example.com", Name: "Sales", Kind: account.Alias},
		{Address: "info@example.com", Name: "Info desk", Kind: account.Alias},
		{Address: "dave@other.org", Name: "Dave", ChatEnabled: true},
	}
}

type fixture struct {
	store *memRosters
	dir   *sliceDir
	cache *account.Cache
	svc   *Service
}

func newFixture(t testing.TB, domainRoster bool, mod func(*Config)) *fixture {
	f := &fixture{store: newMemRosters(), dir: &sliceDir{}}
	f.dir.set(domainEntries())
	f.cache = account.NewCache(f.dir, time.Hour)
	cfg := Config{Store: f.store, DomainRoster: domainRoster}
	if domainRoster {
		cfg.Directory = f.cache
	}
	if mod != nil {
		mod(&cfg)
	}
	f.svc = New(cfg)
	return f
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func get(t testing.TB, s *Service, owner jid.JID) ([]Item, string) {
	t.Helper()
	items, ver, err := s.Get(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Version(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if v != ver {
		t.Fatalf("Version = %q, Get's version = %q", v, ver)
	}
	return items, ver
}

func show(items []Item) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s|%s|%s|%s", it.JID, it.Name, strings.Join(it.Groups, ","), it.Subscription)
		if it.Ask {
			b.WriteString("|ask")
		}
		if it.Approved {
			b.WriteString("|approved")
		}
		if it.Domain {
			b.WriteString("|domain")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestDomainRoster(t *testing.T) {
	f := newFixture(t, true, nil)
	items, _ := get(t, f.svc, alice)
	// Aliases first, then chat-enabled users by name; not carol (not
	// chat-enabled), not alice herself, not dave (another domain).
	want := "" +
		"info@example.com|Info desk|Aliases|both|domain\n" +
		"sales@example.com|Sales|Aliases|both|domain\n" +
		"bob@example.com|Bob Builder|example.com|both|domain\n" +
		"zoe@example.com|Zoe Zimmer|example.com|both|domain\n"
	if got := show(items); got != want {
		t.Fatalf("roster:\n%s\nwant:\n%s", got, want)
	}
	// The returned items are the caller's.
	items[2].Groups[0] = "scribbled"
	items2, _ := get(t, f.svc, alice)
	if show(items2) != want {
		t.Fatal("Get handed out shared groups")
	}

	// Groups from the config.
	g := newFixture(t, true, func(c *Config) { c.UsersGroup, c.AliasGroup = "Colleagues", "Lists" })
	items, _ = get(t, g.svc, bob)
	want = "" +
		"info@example.com|Info desk|Lists|both|domain\n" +
		"sales@example.com|Sales|Lists|both|domain\n" +
		"alice@example.com|Alice|Colleagues|both|domain\n" +
		"zoe@example.com|Zoe Zimmer|Colleagues|both|domain\n"
	if got := show(items); got != want {
		t.Fatalf("roster:\n%s\nwant:\n%s", got, want)
	}
}

func TestDomainRosterWithOwnItems(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	must[Item](t)(s.Set(ctx, alice, erin, "Erin", []string{"Partners"}))
	must[Item](t)(s.Set(ctx, alice, dave, "", nil))
	// A request from a stranger: kept, not shown.
	must[Outcome](t)(s.Inbound(ctx, alice, jid.MustParse("eve@evil.example"), Subscribe, "hi"))
	items, _ := get(t, s, alice)
	want := "" +
		"info@example.com|Info desk|Aliases|both|domain\n" +
		"sales@example.com|Sales|Aliases|both|domain\n" +
		"bob@example.com|Bob Builder|example.com|both|domain\n" +
		"zoe@example.com|Zoe Zimmer|example.com|both|domain\n" +
		"dave@other.org|||none\n" +
		"erin@third.net|Erin|Partners|none\n"
	if got := show(items); got != want {
		t.Fatalf("roster:\n%s\nwant:\n%s", got, want)
	}
}

func TestDomainContactOverrideAndHide(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc

	// Rename and regroup a colleague; duplicate and empty groups go.
	it := must[Item](t)(s.Set(ctx, alice, bob, "Bobby", []string{"Friends", "", "Friends", "Work"}))
	if got := show([]Item{it}); got != "bob@example.com|Bobby|Friends,Work|both|domain\n" {
		t.Fatalf("Set = %s", got)
	}
	items, _ := get(t, s, alice)
	if got := show(items[2:3]); got != "bob@example.com|Bobby|Friends,Work|both|domain\n" {
		t.Fatalf("after Set: %s", got)
	}
	// An empty name and no groups fall back to the directory.
	it = must[Item](t)(s.Set(ctx, alice, bob, "", nil))
	if got := show([]Item{it}); got != "bob@example.com|Bob Builder|example.com|both|domain\n" {
		t.Fatalf("Set empty = %s", got)
	}
	// Aliases can be regrouped too.
	it = must[Item](t)(s.Set(ctx, alice, sales, "", []string{"Team"}))
	if got := show([]Item{it}); got != "sales@example.com|Sales|Team|both|domain\n" {
		t.Fatalf("Set alias = %s", got)
	}

	// Removing a colleague hides them and sends nothing.
	res := must[RemoveResult](t)(s.Remove(ctx, alice, zoe))
	if !res.Item.Removed || !res.Item.Domain || res.Item.JID != zoe || res.SendUnsubscribe || res.SendUnsubscribed {
		t.Fatalf("Remove = %+v", res)
	}
	items, _ = get(t, s, alice)
	for _, it := range items {
		if it.JID == zoe {
			t.Fatal("removed domain contact still listed")
		}
	}
	if _, err := s.Remove(ctx, alice, zoe); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
	// Presence still flows within the domain.
	if ok := must[bool](t)(s.CanSee(ctx, zoe, alice)); !ok {
		t.Fatal("hiding a colleague stopped their presence")
	}
	// Subscribing again shows them again, without routing anything.
	out := must[Outcome](t)(s.Outbound(ctx, alice, zoe, Subscribe))
	if out.Route || out.Push == nil || show([]Item{*out.Push}) != "zoe@example.com|Zoe Zimmer|example.com|both|domain\n" {
		t.Fatalf("Outbound subscribe to a hidden colleague: %+v", out)
	}
	items, _ = get(t, s, alice)
	if len(items) != 4 {
		t.Fatalf("after re-adding: %s", show(items))
	}
	// So does a roster set.
	must[RemoveResult](t)(s.Remove(ctx, alice, info))
	it = must[Item](t)(s.Set(ctx, alice, info, "", nil))
	if show([]Item{it}) != "info@example.com|Info desk|Aliases|both|domain\n" {
		t.Fatalf("Set after Remove: %+v", it)
	}
	if items, _ = get(t, s, alice); len(items) != 4 {
		t.Fatalf("after re-adding by Set: %s", show(items))
	}
}

func TestDomainContactSubscriptions(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	// A request from a colleague is approved by the server.
	out := must[Outcome](t)(s.Inbound(ctx, alice, bob, Subscribe, "hi"))
	if out.Deliver || out.AutoReply != Subscribed || out.Push != nil {
		t.Fatalf("Inbound subscribe from a colleague: %+v", out)
	}
	// Everything else between colleagues is a no-op, stored nowhere.
	for _, typ := range []SubType{Subscribe, Subscribed, Unsubscribe, Unsubscribed} {
		if out := must[Outcome](t)(s.Outbound(ctx, alice, bob, typ)); out != (Outcome{}) {
			t.Errorf("Outbound %v to a colleague: %+v", typ, out)
		}
	}
	for _, typ := range []SubType{Subscribed, Unsubscribe, Unsubscribed} {
		if out := must[Outcome](t)(s.Inbound(ctx, alice, sales, typ, "")); out != (Outcome{}) {
			t.Errorf("Inbound %v from a colleague: %+v", typ, out)
		}
	}
	if v := f.store.version("alice@example.com"); v != 0 {
		t.Fatalf("store changed %d times", v)
	}
	// A user of the domain who has not turned chat on is not a domain
	// contact: the RFC applies.
	out = must[Outcome](t)(s.Outbound(ctx, alice, carol, Subscribe))
	if !out.Route || out.Push == nil || !out.Push.Ask || out.Push.Domain {
		t.Fatalf("Outbound subscribe to carol: %+v", out)
	}
}

func TestVersion(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	_, v0 := get(t, s, alice)
	if !strings.HasPrefix(v0, "0-") {
		t.Fatalf("initial version %q", v0)
	}
	// A store change changes it.
	must[Item](t)(s.Set(ctx, alice, dave, "Dave", []string{"X"}))
	_, v1 := get(t, s, alice)
	if v1 == v0 {
		t.Fatal("version unchanged by Set")
	}
	// A no-op does not.
	must[Item](t)(s.Set(ctx, alice, dave, "Dave", []string{"X", "X"}))
	must[Outcome](t)(s.Outbound(ctx, alice, bob, Unsubscribe))
	must[Outcome](t)(s.Outbound(ctx, alice, dave, Unsubscribed))
	if _, v := get(t, s, alice); v != v1 {
		t.Fatalf("version changed by no-ops: %q -> %q", v1, v)
	}
	// Refetching an unchanged directory does not.
	f.cache.Invalidate("example.com")
	if _, v := get(t, s, alice); v != v1 {
		t.Fatalf("version changed by a directory refetch: %q -> %q", v1, v)
	}
	// A directory change does, once the cache sees it.
	f.dir.add(account.Entry{Address: "new@example.com", Name: "Newcomer", ChatEnabled: true})
	f.cache.Invalidate("example.com")
	items, v2 := get(t, s, alice)
	if v2 == v1 {
		t.Fatal("version unchanged by a new colleague")
	}
	if !strings.Contains(show(items), "new@example.com|Newcomer") {
		t.Fatalf("new colleague missing:\n%s", show(items))
	}
	// So does a renamed colleague, or one who turned chat on.
	e := domainEntries()
	e[2].Name = "Robert"
	e[3].ChatEnabled = true
	f.dir.set(e)
	f.cache.Invalidate("example.com")
	items, v3 := get(t, s, alice)
	if v3 == v2 || !strings.Contains(show(items), "Robert") || !strings.Contains(show(items), "carol@example.com") {
		t.Fatalf("version %q after %q:\n%s", v3, v2, show(items))
	}
	// A subscription change of someone else's roster does not.
	_, vb := get(t, s, bob)
	must[Outcome](t)(s.Inbound(ctx, alice, erin, Subscribe, ""))
	if _, v := get(t, s, bob); v != vb {
		t.Fatal("bob's version changed with alice's roster")
	}
}

func TestNoDomainRoster(t *testing.T) {
	f := newFixture(t, false, nil)
	s := f.svc
	items, v := get(t, s, alice)
	if len(items) != 0 || v != "0" {
		t.Fatalf("empty roster: %v %q", items, v)
	}
	// Colleagues are ordinary contacts.
	out := must[Outcome](t)(s.Inbound(ctx, alice, bob, Subscribe, "hi"))
	if !out.Deliver || out.AutoReply != 0 {
		t.Fatalf("Inbound subscribe: %+v", out)
	}
	must[Item](t)(s.Set(ctx, alice, bob, "Bob", nil))
	items, v = get(t, s, alice)
	if show(items) != "bob@example.com|Bob||none\n" || v != "2" {
		t.Fatalf("roster %q %s", v, show(items))
	}
	if _, dom, _ := s.PresenceTargets(ctx, alice); dom {
		t.Fatal("domain flag without domain roster")
	}
	if ok := must[bool](t)(s.CanSee(ctx, bob, alice)); ok {
		t.Fatal("colleague sees presence without a subscription")
	}
}

func TestSetAndRemove(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	if _, err := s.Set(ctx, alice, alice.WithResource("phone"), "me", nil); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Set self: %v", err)
	}
	if _, err := s.Set(ctx, alice, jid.JID{}, "x", nil); !errors.Is(err, jid.ErrMalformed) {
		t.Fatalf("Set zero JID: %v", err)
	}
	if _, err := s.Remove(ctx, alice, dave); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Remove missing: %v", err)
	}
	// Set does not touch the subscription.
	must[Outcome](t)(s.Outbound(ctx, alice, dave, Subscribe))
	it := must[Item](t)(s.Set(ctx, alice, dave.WithResource("laptop"), "Dave", []string{"B", "A", "B"}))
	if show([]Item{it}) != "dave@other.org|Dave|B,A|none|ask\n" {
		t.Fatalf("Set = %s", show([]Item{it}))
	}
	// A pending request from someone not in the roster cannot be removed:
	// the client never saw it.
	must[Outcome](t)(s.Inbound(ctx, alice, erin, Subscribe, ""))
	if _, err := s.Remove(ctx, alice, erin); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Remove hidden: %v", err)
	}

	// RFC 6121 2.5.2: what removal sends, by state.
	for _, c := range []struct {
		state             string
		unsub, unsubd     bool
		approved, visible bool
	}{
		{"None", false, false, false, true},
		{"None + Pending Out", true, false, false, true},
		{"None + Pending In", false, true, false, true},
		{"None + Pending Out/In", true, true, false, true},
		{"To", true, false, true, true},
		{"To + Pending In", true, true, false, true},
		{"From", false, true, false, true},
		{"From + Pending Out", true, true, false, true},
		{"Both", true, true, false, true},
	} {
		t.Run("2.5.2/"+c.state, func(t *testing.T) {
			r := rec(c.state)
			r.Contact = "x@other.org"
			r.Approved = c.approved
			f.store.PutRosterItem(ctx, "alice@example.com", r)
			res, err := s.Remove(ctx, alice, jid.MustParse("x@other.org"))
			if err != nil {
				t.Fatal(err)
			}
			if res.SendUnsubscribe != c.unsub || res.SendUnsubscribed != c.unsubd || !res.Item.Removed || res.Item.Domain {
				t.Fatalf("Remove = %+v", res)
			}
			if _, ok := f.store.get("alice@example.com", "x@other.org"); ok {
				t.Fatal("item still stored")
			}
		})
	}
}

// The whole exchange between two users of different domains, both served
// here, with the edge's routing done by hand.
func TestSubscriptionFlow(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc

	// 3.1.2: alice asks dave.
	out := must[Outcome](t)(s.Outbound(ctx, alice, dave, Subscribe))
	if !out.Route || out.Push == nil || !out.Push.Ask || out.Push.Subscription != storage.SubNone {
		t.Fatalf("alice subscribe: %+v", out)
	}
	// 3.1.3: dave's server gets it while dave is offline.
	out = must[Outcome](t)(s.Inbound(ctx, dave, alice, Subscribe, "It's Alice"))
	if !out.Deliver || out.Push != nil || out.AutoReply != 0 {
		t.Fatalf("dave inbound subscribe: %+v", out)
	}
	// Dave logs in later, on a restarted server: the request is still there.
	s2 := New(Config{Store: f.store, Directory: f.cache, DomainRoster: true})
	reqs := must[[]Request](t)(s2.Pending(ctx, dave))
	if len(reqs) != 1 || reqs[0].From != alice || reqs[0].Status != "It's Alice" {
		t.Fatalf("Pending = %+v", reqs)
	}
	if items, _ := get(t, s2, dave); len(items) != 0 {
		t.Fatalf("request shown as an item: %s", show(items))
	}
	// 3.1.5: dave approves.
	out = must[Outcome](t)(s2.Outbound(ctx, dave, alice, Subscribed))
	if !out.Route || !out.SendPresence || out.Push == nil || out.Push.Subscription != storage.SubFrom {
		t.Fatalf("dave subscribed: %+v", out)
	}
	if reqs := must[[]Request](t)(s2.Pending(ctx, dave)); len(reqs) != 0 {
		t.Fatalf("Pending after approval = %+v", reqs)
	}
	// 3.1.6: alice's server gets the approval.
	out = must[Outcome](t)(s.Inbound(ctx, alice, dave, Subscribed, ""))
	if !out.Deliver || out.Push == nil || out.Push.Subscription != storage.SubTo || out.Push.Ask {
		t.Fatalf("alice inbound subscribed: %+v", out)
	}
	// A duplicate approval is ignored (A.3.3 "To").
	if out = must[Outcome](t)(s.Inbound(ctx, alice, dave, Subscribed, "")); out.Deliver || out.Push != nil {
		t.Fatalf("duplicate subscribed: %+v", out)
	}

	subs, dom := must2(t, s.ProbeTargets, alice)
	if len(subs) != 1 || subs[0] != dave || !dom {
		t.Fatalf("ProbeTargets(alice) = %v %v", subs, dom)
	}
	subs, _ = must2(t, s.PresenceTargets, dave)
	if len(subs) != 1 || subs[0] != alice {
		t.Fatalf("PresenceTargets(dave) = %v", subs)
	}
	if subs, _ = must2(t, s.PresenceTargets, alice); len(subs) != 0 {
		t.Fatalf("PresenceTargets(alice) = %v", subs)
	}
	if ok := must[bool](t)(s.CanSee(ctx, alice, dave)); !ok {
		t.Fatal("alice cannot see dave")
	}
	if ok := must[bool](t)(s.CanSee(ctx, dave, alice)); ok {
		t.Fatal("dave sees alice without a subscription")
	}

	// 3.3: alice unsubscribes.
	out = must[Outcome](t)(s.Outbound(ctx, alice, dave, Unsubscribe))
	if !out.Route || out.Push == nil || out.Push.Subscription != storage.SubNone {
		t.Fatalf("alice unsubscribe: %+v", out)
	}
	out = must[Outcome](t)(s2.Inbound(ctx, dave, alice, Unsubscribe, ""))
	if !out.Deliver || !out.SendUnavailable || out.Push == nil || out.Push.Subscription != storage.SubNone {
		t.Fatalf("dave inbound unsubscribe: %+v", out)
	}
	if subs, _ = must2(t, s.PresenceTargets, dave); len(subs) != 0 {
		t.Fatalf("PresenceTargets(dave) after unsubscribe = %v", subs)
	}
}

func must2(t *testing.T, f func(context.Context, jid.JID) ([]jid.JID, bool, error), owner jid.JID) ([]jid.JID, bool) {
	t.Helper()
	l, b, err := f(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	return l, b
}

func TestPreApprovalFlow(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	// 3.4: dave pre-approves erin, who is not in his roster.
	out := must[Outcome](t)(s.Outbound(ctx, dave, erin, Subscribed))
	if out.Route || out.Push == nil || !out.Push.Approved || out.Push.Subscription != storage.SubNone {
		t.Fatalf("pre-approve: %+v", out)
	}
	// Erin asks while dave is offline: approved by the server.
	out = must[Outcome](t)(s.Inbound(ctx, dave, erin, Subscribe, ""))
	if out.Deliver || out.AutoReply != Subscribed || !out.SendPresence || out.Push == nil || out.Push.Subscription != storage.SubFrom || out.Push.Approved {
		t.Fatalf("pre-approved request: %+v", out)
	}
	if reqs := must[[]Request](t)(s.Pending(ctx, dave)); len(reqs) != 0 {
		t.Fatalf("Pending = %+v", reqs)
	}
	// Another pre-approval, cancelled before use (A.2.4 [1]).
	must[Outcome](t)(s.Outbound(ctx, dave, bob, Subscribed))
	out = must[Outcome](t)(s.Outbound(ctx, dave, bob, Unsubscribed))
	if out.Route || out.Push == nil || out.Push.Approved {
		t.Fatalf("cancel pre-approval: %+v", out)
	}
	out = must[Outcome](t)(s.Inbound(ctx, dave, bob, Subscribe, ""))
	if !out.Deliver || out.AutoReply != 0 {
		t.Fatalf("request after cancelled pre-approval: %+v", out)
	}
}

func TestPendingAndTargetsSkipDomainContacts(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	// Left over from before the domain roster was turned on.
	f.store.PutRosterItem(ctx, "alice@example.com", storage.RosterItem{Contact: "bob@example.com", PendingIn: true, Subscription: storage.SubFrom})
	f.store.PutRosterItem(ctx, "alice@example.com", storage.RosterItem{Contact: "dave@other.org", Subscription: storage.SubBoth})
	must[Outcome](t)(s.Inbound(ctx, alice, erin, Subscribe, "hello"))
	reqs := must[[]Request](t)(s.Pending(ctx, alice))
	if len(reqs) != 1 || reqs[0].From != erin || reqs[0].Status != "hello" {
		t.Fatalf("Pending = %+v", reqs)
	}
	subs, dom := must2(t, s.PresenceTargets, alice)
	if len(subs) != 1 || subs[0] != dave || !dom {
		t.Fatalf("PresenceTargets = %v %v", subs, dom)
	}
	for _, c := range []struct {
		watcher jid.JID
		want    bool
	}{{bob, true}, {zoe, true}, {carol, false}, {sales, false}, {dave, true}, {erin, false}, {alice, true}} {
		if got := must[bool](t)(s.CanSee(ctx, c.watcher, alice)); got != c.want {
			t.Errorf("CanSee(%s, alice) = %v, want %v", c.watcher, got, c.want)
		}
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	f.store.failPut = errors.New("disk full")
	if _, err := s.Outbound(ctx, alice, dave, Subscribe); err == nil || !strings.HasPrefix(err.Error(), "roster: ") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Outbound with a failing store: %v", err)
	}
	if _, err := s.Set(ctx, alice, dave, "x", nil); err == nil {
		t.Fatal("Set with a failing store succeeded")
	}
	f.store.failPut = nil
	if _, err := s.Outbound(ctx, alice, dave, 0); err == nil {
		t.Fatal("zero SubType accepted")
	}
	if _, err := s.Inbound(ctx, alice, alice, Subscribe, ""); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Inbound from self: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	g := newFixture(t, true, nil)
	if _, _, err := g.svc.Get(cctx, alice); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New without a Store did not panic")
		}
	}()
	New(Config{})
}

// Two changes to one item of one owner at once must both land: the
// roster set's name and the subscription request's ask flag.
func TestConcurrentChangesToOneOwner(t *testing.T) {
	f := newFixture(t, true, nil)
	f.store.yield = true
	s := f.svc
	for i := range 200 {
		contact := jid.MustParse(fmt.Sprintf("c%d@other.org", i))
		var wg sync.WaitGroup
		wg.Go(func() { must[Item](t)(s.Set(ctx, alice, contact, "Name", []string{"G"})) })
		wg.Go(func() { must[Outcome](t)(s.Outbound(ctx, alice, contact, Subscribe)) })
		wg.Go(func() { must[Outcome](t)(s.Inbound(ctx, alice, contact, Subscribe, "s")) })
		wg.Wait()
		it, ok := f.store.get("alice@example.com", contact.String())
		if !ok || it.Name != "Name" || !it.AskOut || !it.PendingIn || it.Hidden {
			t.Fatalf("lost update: %+v", it)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, true, nil)
	s := f.svc
	owners := []jid.JID{alice, bob, zoe, dave}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				owner := owners[(w+i)%len(owners)]
				contact := jid.MustParse(fmt.Sprintf("x%d@third.net", i%7))
				var err error
				switch i % 6 {
				case 0:
					_, err = s.Set(ctx, owner, contact, "n", []string{"g"})
				case 1:
					_, err = s.Outbound(ctx, owner, contact, Subscribe)
				case 2:
					_, err = s.Inbound(ctx, owner, contact, Subscribed, "")
				case 3:
					_, _, err = s.Get(ctx, owner)
				case 4:
					_, err = s.Version(ctx, owner)
				case 5:
					f.cache.Invalidate("example.com")
					_, err = s.Remove(ctx, owner, contact)
					if errors.Is(err, storage.ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
