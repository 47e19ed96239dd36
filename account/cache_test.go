package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDir is a Directory over a slice, counting calls. When gate is set,
// List blocks until it is closed.
type fakeDir struct {
	mu      sync.Mutex
	entries []Entry
	listErr error
	gate    chan struct{}
	panicky bool

	lists, lookups atomic.Int32
}

func (f *fakeDir) set(entries ...Entry) {
	f.mu.Lock()
	f.entries = append([]Entry(nil), entries...)
	f.mu.Unlock()
}

func (f *fakeDir) Lookup(ctx context.Context, address string) (Entry, error) {
	f.lookups.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.entries {
		if strings.EqualFold(e.Address, address) {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("fake: %s: %w", address, ErrNotFound)
}

func (f *fakeDir) List(ctx context.Context, domain string) ([]Entry, error) {
	f.lists.Add(1)
	f.mu.Lock()
	gate, err, panicky := f.gate, f.listErr, f.panicky
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if panicky {
		panic("host bug")
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Entry
	for _, e := range f.entries {
		if strings.HasSuffix(strings.ToLower(e.Address), "@"+domain) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeDir) Search(ctx context.Context, domain, query string, limit int) ([]Entry, error) {
	return nil, nil
}

func (f *fakeDir) Members(ctx context.Context, alias string) ([]string, error) {
	return []string{"m@" + alias}, nil
}

// clock is a settable time source for Cache.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(d Directory, ttl time.Duration) (*Cache, *clock) {
	c := NewCache(d, ttl)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c.now = clk.now
	return c, clk
}

var sample = []Entry{
	{Address: "zed@example.com", Name: "Zed", ChatEnabled: true},
	{Address: "Alice@Example.com", Name: "alice Liddell", ChatEnabled: true},
	{Address: "sales@example.com", Name: "Sales", Kind: Alias},
	{Address: "bob@example.com", Name: "Bob", ChatEnabled: false},
	{Address: "info@example.com", Kind: Alias},
	{Address: "carol@other.org", Name: "Carol", ChatEnabled: true},
}

func TestCacheDomainViewOrderAndIndex(t *testing.T) {
	f := &fakeDir{}
	f.set(sample...)
	// The host wrongly lists an address of another domain and a case
	// duplicate: both are dropped.
	f.entries = append(f.entries, Entry{Address: "ALICE@example.com", Name: "dup"})
	c, _ := newTestCache(f, time.Minute)
	v, err := c.Domain(context.Background(), "Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range v.Entries {
		got = append(got, e.Address)
	}
	want := []string{"info@example.com", "sales@example.com", "Alice@Example.com", "bob@example.com", "zed@example.com"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if v.Domain != "example.com" {
		t.Errorf("Domain = %q", v.Domain)
	}
	if e, ok := v.ByAddress["alice@example.com"]; !ok || e.Name != "alice Liddell" {
		t.Errorf("ByAddress[alice] = %+v, %v", e, ok)
	}
	if _, ok := v.ByAddress["carol@other.org"]; ok {
		t.Error("entry of another domain kept")
	}
	if len(v.Fingerprint) != 16 {
		t.Errorf("Fingerprint %q: want 16 hex digits", v.Fingerprint)
	}
}

func TestCacheCachesUntilTTL(t *testing.T) {
	f := &fakeDir{}
	f.set(sample...)
	c, clk := newTestCache(f, time.Minute)
	ctx := context.Background()
	for range 5 {
		if _, err := c.List(ctx, "example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.lists.Load(); n != 1 {
		t.Fatalf("List called %d times within ttl, want 1", n)
	}
	clk.add(59 * time.Second)
	c.List(ctx, "example.com")
	if n := f.lists.Load(); n != 1 {
		t.Fatalf("List called %d times before expiry, want 1", n)
	}
	clk.add(time.Second)
	c.List(ctx, "example.com")
	if n := f.lists.Load(); n != 2 {
		t.Fatalf("List called %d times after expiry, want 2", n)
	}
	// Different domains are cached separately.
	c.List(ctx, "other.org")
	if n := f.lists.Load(); n != 3 {
		t.Fatalf("List called %d times, want 3", n)
	}
}

func TestCacheListReturnsCopy(t *testing.T) {
	f := &fakeDir{}
	f.set(sample...)
	c, _ := newTestCache(f, time.Minute)
	l, _ := c.List(context.Background(), "example.com")
	l[0].Name = "scribbled"
	v, _ := c.Domain(context.Background(), "example.com")
	if v.Entries[0].Name == "scribbled" {
		t.Fatal("List handed out the cached slice")
	}
}

func TestCacheFingerprint(t *testing.T) {
	ctx := context.Background()
	fp := func(entries ...Entry) string {
		f := &fakeDir{}
		f.set(entries...)
		c, _ := newTestCache(f, time.Minute)
		v, err := c.Domain(ctx, "example.com")
		if err != nil {
			t.Fatal(err)
		}
		return v.Fingerprint
	}
	base := []Entry{
		{Address: "a@example.com", Name: "A", ChatEnabled: true},
		{Address: "b@example.com", Name: "B"},
		{Address: "all@example.com", Kind: Alias},
	}
	ref := fp(base...)
	mod := func(f func(e []Entry) []Entry) string {
		e := append([]Entry(nil), base...)
		return fp(f(e)...)
	}
	same := map[string]string{
		"host order": mod(func(e []Entry) []Entry { e[0], e[2] = e[2], e[0]; return e }),
		"case":       mod(func(e []Entry) []Entry { e[0].Address = "A@EXAMPLE.com"; return e }),
		"alias chat": mod(func(e []Entry) []Entry { e[2].ChatEnabled = true; return e }),
	}
	for name, got := range same {
		if got != ref {
			t.Errorf("%s changed the fingerprint", name)
		}
	}
	differ := map[string]string{
		"name":    mod(func(e []Entry) []Entry { e[0].Name = "A2"; return e }),
		"chat":    mod(func(e []Entry) []Entry { e[1].ChatEnabled = true; return e }),
		"kind":    mod(func(e []Entry) []Entry { e[1].Kind = Alias; return e }),
		"added":   mod(func(e []Entry) []Entry { return append(e, Entry{Address: "c@example.com"}) }),
		"removed": mod(func(e []Entry) []Entry { return e[:2] }),
		"address": mod(func(e []Entry) []Entry { e[1].Address = "b2@example.com"; return e }),
	}
	seen := map[string]string{ref: "base"}
	for name, got := range differ {
		if prev, ok := seen[got]; ok {
			t.Errorf("%s: fingerprint equals that of %s", name, prev)
		}
		seen[got] = name
	}
}

func TestCacheSingleflight(t *testing.T) {
	f := &fakeDir{gate: make(chan struct{})}
	f.set(sample...)
	c, _ := newTestCache(f, time.Minute)

	const n = 50
	var wg sync.WaitGroup
	views := make([]*DomainView, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { views[i], errs[i] = c.Domain(context.Background(), "example.com") })
	}
	// Wait until the one fetch is blocked in the host, then let it go.
	for f.lists.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let the others queue on the fetch
	close(f.gate)
	wg.Wait()
	if got := f.lists.Load(); got != 1 {
		t.Fatalf("List called %d times for %d concurrent callers, want 1", got, n)
	}
	for i := range n {
		if errs[i] != nil || views[i] != views[0] {
			t.Fatalf("caller %d: view %p err %v, want the shared view %p", i, views[i], errs[i], views[0])
		}
	}
}

func TestCacheWaiterCancellation(t *testing.T) {
	f := &fakeDir{gate: make(chan struct{})}
	f.set(sample...)
	c, _ := newTestCache(f, time.Minute)

	// The caller that starts the fetch gives up; a second caller waiting
	// on the same fetch still gets the view.
	ctx1, cancel := context.WithCancel(context.Background())
	done1 := make(chan error)
	go func() { _, err := c.Domain(ctx1, "example.com"); done1 <- err }()
	for f.lists.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	done2 := make(chan error)
	go func() { _, err := c.Domain(context.Background(), "example.com"); done2 <- err }()
	cancel()
	if err := <-done1; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(f.gate)
	if err := <-done2; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if got := f.lists.Load(); got != 1 {
		t.Fatalf("List called %d times, want 1", got)
	}
}

func TestCacheErrors(t *testing.T) {
	f := &fakeDir{listErr: errors.New("ldap down")}
	f.set(sample...)
	c, clk := newTestCache(f, time.Minute)
	ctx := context.Background()
	if _, err := c.Domain(ctx, "example.com"); err == nil || !strings.Contains(err.Error(), "ldap down") {
		t.Fatalf("err = %v", err)
	}
	// Errors are not cached.
	f.mu.Lock()
	f.listErr = nil
	f.mu.Unlock()
	v1, err := c.Domain(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	// After expiry a failing host leaves the old view in use.
	clk.add(2 * time.Minute)
	f.mu.Lock()
	f.listErr = errors.New("ldap down")
	f.mu.Unlock()
	v2, err := c.Domain(ctx, "example.com")
	if err != nil || v2 != v1 {
		t.Fatalf("stale fallback: %p %v, want %p", v2, err, v1)
	}
	// A panicking host is an error, not a crash.
	f.mu.Lock()
	f.panicky = true
	f.mu.Unlock()
	if _, err := c.Domain(ctx, "other.org"); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("panic: err = %v", err)
	}
	if _, err := c.Domain(ctx, " "); err == nil {
		t.Fatal("empty domain accepted")
	}
}

func TestCacheEntryAndLookup(t *testing.T) {
	f := &fakeDir{}
	f.set(sample...)
	c, clk := newTestCache(f, time.Minute)
	ctx := context.Background()

	e, ok, err := c.Entry(ctx, "ALICE@example.com")
	if err != nil || !ok || e.Name != "alice Liddell" {
		t.Fatalf("Entry = %+v %v %v", e, ok, err)
	}
	if f.lookups.Load() != 0 {
		t.Fatal("Entry of a listed address called Lookup")
	}

	// Missing from the list: ask Lookup once, remember the negative.
	for range 3 {
		_, ok, err = c.Entry(ctx, "nobody@example.com")
		if err != nil || ok {
			t.Fatalf("Entry(nobody) = %v %v", ok, err)
		}
	}
	if n := f.lookups.Load(); n != 1 {
		t.Fatalf("Lookup called %d times, want 1 (negative cached)", n)
	}
	// The user is created at the host; after the short negative ttl the
	// cache finds it through Lookup though the list is still cached.
	f.set(append(sample, Entry{Address: "nobody@example.com", Name: "New", ChatEnabled: true})...)
	clk.add(negativeTTL)
	e, ok, err = c.Entry(ctx, "nobody@example.com")
	if err != nil || !ok || e.Name != "New" {
		t.Fatalf("after negative ttl: %+v %v %v", e, ok, err)
	}
	if n := f.lists.Load(); n != 1 {
		t.Fatalf("List called %d times, want 1", n)
	}

	if _, err := c.Lookup(ctx, "ghost@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(ghost) = %v, want ErrNotFound", err)
	}
	if e, err := c.Lookup(ctx, "sales@EXAMPLE.com"); err != nil || e.Kind != Alias {
		t.Fatalf("Lookup(sales) = %+v %v", e, err)
	}
	if _, ok, err := c.Entry(ctx, "no-at-sign"); ok || err != nil {
		t.Fatalf("Entry(no-at-sign) = %v %v", ok, err)
	}
	if m, err := c.Members(ctx, "sales@example.com"); err != nil || len(m) != 1 {
		t.Fatalf("Members = %v %v", m, err)
	}
}

func TestCacheInvalidate(t *testing.T) {
	f := &fakeDir{}
	f.set(sample...)
	c, _ := newTestCache(f, time.Hour)
	ctx := context.Background()
	v1, _ := c.Domain(ctx, "example.com")
	c.Entry(ctx, "ghost@example.com") // remembered negative
	f.set(append(sample, Entry{Address: "ghost@example.com", Name: "Ghost", ChatEnabled: true})...)
	c.Invalidate("EXAMPLE.com")
	v2, _ := c.Domain(ctx, "example.com")
	if v2 == v1 || v2.Fingerprint == v1.Fingerprint {
		t.Fatal("Invalidate did not refetch")
	}
	if _, ok, _ := c.Entry(ctx, "ghost@example.com"); !ok {
		t.Fatal("Invalidate kept the negative lookup")
	}
}

func TestCacheInvalidateDuringFetch(t *testing.T) {
	f := &fakeDir{gate: make(chan struct{})}
	f.set(sample...)
	c, _ := newTestCache(f, time.Hour)
	ctx := context.Background()
	old := make(chan *DomainView)
	go func() { v, _ := c.Domain(ctx, "example.com"); old <- v }()
	for f.lists.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The directory changes and the host says so while the first fetch,
	// which may have read the old data, is still under way.
	c.Invalidate("example.com")
	close(f.gate)
	<-old
	f.set(sample[:2]...)
	v, err := c.Domain(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Entries) != 2 {
		t.Fatalf("got the fetch from before Invalidate: %d entries", len(v.Entries))
	}
}

func TestCacheConcurrentUse(t *testing.T) {
	f := &fakeDir{}
	f.set(sample...)
	c, clk := newTestCache(f, time.Second)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				switch (i + j) % 5 {
				case 0:
					c.Invalidate("example.com")
				case 1:
					clk.add(300 * time.Millisecond)
				case 2:
					c.Entry(ctx, fmt.Sprintf("u%d@example.com", j))
				default:
					if v, err := c.Domain(ctx, "example.com"); err != nil || len(v.Entries) != 5 {
						t.Errorf("Domain: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
