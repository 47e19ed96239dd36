package account

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// negativeTTL bounds how long Cache remembers the answer of a Lookup made
// because an address was missing from its domain's cached list. It is kept
// short so that a user created at the host becomes visible quickly.
const negativeTTL = 10 * time.Second

// maxLookups bounds the remembered Lookup answers; past it the expired ones
// are swept, and if that is not enough the whole table is dropped.
const maxLookups = 4096

// DomainView is a snapshot of one domain's directory as Cache holds it. A
// view is shared by every caller and must be treated as read-only.
type DomainView struct {
	// Domain is the lower-cased domain name.
	Domain string
	// Entries are the domain's aliases first, then its users, each group
	// ordered by display name (the address when there is none) and then by
	// address, case-insensitively. Entries whose address is not in Domain
	// and later duplicates of an address are left out.
	Entries []Entry
	// ByAddress maps each lower-cased address to its entry.
	ByAddress map[string]Entry
	// Fingerprint is a short hash of every address, name, kind and
	// chat-enabled flag in the view. It changes whenever any of them does,
	// and only then, so that roster versions can be derived from it.
	Fingerprint string
}

// Cache wraps a Directory and keeps each domain's List result for a while.
// It implements Directory itself: List and Lookup are answered from the
// cached list, Search and Members go to the host every time.
//
// A Cache is safe for concurrent use. At most one List call per domain is
// under way at a time: callers who need the same domain while it is being
// fetched wait for that fetch instead of starting another, each until its
// own context is done. The fetch itself does not stop when the caller that
// started it gives up, so that the others still get their answer.
type Cache struct {
	d   Directory
	ttl time.Duration
	now func() time.Time // a field so that tests can move time

	mu      sync.Mutex
	domains map[string]*domainState
	lookups map[string]lookupResult // lower-cased address -> Lookup answer
}

type domainState struct {
	view    *DomainView
	expires time.Time
	gen     uint64     // bumped by Invalidate; a fetch from an older gen is not kept
	call    *fetchCall // the fetch under way, if any
}

type fetchCall struct {
	done chan struct{}
	view *DomainView
	err  error
}

type lookupResult struct {
	entry   Entry
	found   bool
	expires time.Time
}

// NewCache returns a Cache over d that keeps each domain's list for ttl. A
// ttl of zero or less means one minute.
func NewCache(d Directory, ttl time.Duration) *Cache {
	if d == nil {
		panic("account: NewCache with a nil Directory")
	}
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &Cache{
		d:       d,
		ttl:     ttl,
		now:     time.Now,
		domains: make(map[string]*domainState),
		lookups: make(map[string]lookupResult),
	}
}

func normDomain(domain string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
}

// Domain returns the view of a domain, fetching the domain's list from the
// host when the cached one is missing or older than the ttl. When a fetch
// fails and an older view exists, the older view is returned (and the next
// call tries the host again), so that a hiccup at the host does not empty
// every roster of the domain.
func (c *Cache) Domain(ctx context.Context, domain string) (*DomainView, error) {
	key := normDomain(domain)
	if key == "" {
		return nil, errors.New("account: empty domain")
	}
	c.mu.Lock()
	st := c.domains[key]
	if st == nil {
		st = &domainState{}
		c.domains[key] = st
	}
	if st.view != nil && c.now().Before(st.expires) {
		v := st.view
		c.mu.Unlock()
		return v, nil
	}
	call := st.call
	if call == nil {
		call = &fetchCall{done: make(chan struct{})}
		st.call = call
		// Detached from ctx: other callers may come to wait for this
		// fetch, and the first caller giving up must not fail them.
		go c.fetch(context.WithoutCancel(ctx), key, st, call, st.gen)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.view, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Cache) fetch(ctx context.Context, key string, st *domainState, call *fetchCall, gen uint64) {
	entries, err := c.list(ctx, key)
	var view *DomainView
	if err == nil {
		view = newDomainView(key, entries)
	}
	c.mu.Lock()
	if st.call == call {
		st.call = nil
	}
	switch {
	case err == nil && st.gen == gen:
		st.view = view
		st.expires = c.now().Add(c.ttl)
	case err != nil && st.view != nil:
		view, err = st.view, nil
	}
	c.mu.Unlock()
	call.view, call.err = view, err
	close(call.done)
}

// list calls the host, turning a panic into an error: the call runs on a
// goroutine of its own, where a panic could not be recovered by any caller.
func (c *Cache) list(ctx context.Context, domain string) (entries []Entry, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("account: Directory.List(%q) panicked: %v", domain, r)
		}
	}()
	entries, err = c.d.List(ctx, domain)
	if err != nil {
		err = fmt.Errorf("account: listing %s: %w", domain, err)
	}
	return entries, err
}

// Invalidate forgets the cached list of a domain and the remembered Lookup
// answers for its addresses; the next call fetches them again. A fetch under
// way when Invalidate is called is not cached when it completes.
func (c *Cache) Invalidate(domain string) {
	key := normDomain(domain)
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.domains[key]; st != nil {
		st.view = nil
		st.gen++
		st.call = nil // later callers start a fresh fetch
	}
	for addr := range c.lookups {
		if addr[strings.LastIndexByte(addr, '@')+1:] == key {
			delete(c.lookups, addr)
		}
	}
}

// Entry returns the directory entry of an address (user@domain, compared
// case-insensitively) and whether there is one. It answers from the cached
// list of the address's domain; an address missing from that list is asked
// of the host's Lookup, and that answer is remembered for a few seconds. An
// address without a domain has no entry.
func (c *Cache) Entry(ctx context.Context, address string) (Entry, bool, error) {
	addr := strings.ToLower(strings.TrimSpace(address))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return Entry{}, false, nil
	}
	view, err := c.Domain(ctx, addr[at+1:])
	if err != nil {
		return Entry{}, false, err
	}
	if e, ok := view.ByAddress[addr]; ok {
		return e, true, nil
	}
	c.mu.Lock()
	r, ok := c.lookups[addr]
	c.mu.Unlock()
	if ok && c.now().Before(r.expires) {
		return r.entry, r.found, nil
	}
	e, err := c.d.Lookup(ctx, address)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Entry{}, false, err
	}
	c.remember(addr, lookupResult{entry: e, found: found})
	return e, found, nil
}

func (c *Cache) remember(addr string, r lookupResult) {
	ttl := min(negativeTTL, c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	r.expires = now.Add(ttl)
	if len(c.lookups) >= maxLookups {
		for a, old := range c.lookups {
			if !now.Before(old.expires) {
				delete(c.lookups, a)
			}
		}
		if len(c.lookups) >= maxLookups {
			clear(c.lookups)
		}
	}
	c.lookups[addr] = r
}

// Lookup implements Directory from the cache; see Entry.
func (c *Cache) Lookup(ctx context.Context, address string) (Entry, error) {
	e, ok, err := c.Entry(ctx, address)
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return Entry{}, fmt.Errorf("account: %q: %w", address, ErrNotFound)
	}
	return e, nil
}

// List implements Directory from the cache: it returns a copy of the
// domain view's entries, in the view's order.
func (c *Cache) List(ctx context.Context, domain string) ([]Entry, error) {
	v, err := c.Domain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.Entries), nil
}

// Search passes through to the host, which knows best how to rank matches.
func (c *Cache) Search(ctx context.Context, domain, query string, limit int) ([]Entry, error) {
	return c.d.Search(ctx, domain, query, limit)
}

// Members passes through to the host: alias membership is read when a
// message to an alias is fanned out, and must not lag behind the host.
func (c *Cache) Members(ctx context.Context, alias string) ([]string, error) {
	return c.d.Members(ctx, alias)
}

func newDomainView(domain string, entries []Entry) *DomainView {
	v := &DomainView{
		Domain:    domain,
		Entries:   make([]Entry, 0, len(entries)),
		ByAddress: make(map[string]Entry, len(entries)),
	}
	for _, e := range entries {
		addr := strings.ToLower(strings.TrimSpace(e.Address))
		at := strings.LastIndexByte(addr, '@')
		if at <= 0 || addr[at+1:] != domain {
			continue
		}
		if _, dup := v.ByAddress[addr]; dup {
			continue
		}
		v.ByAddress[addr] = e
		v.Entries = append(v.Entries, e)
	}
	slices.SortFunc(v.Entries, compareEntries)

	h := sha256.New()
	for _, e := range v.Entries {
		chat := byte('0')
		if e.Kind != Alias && e.ChatEnabled {
			chat = '1'
		}
		kind := byte('u')
		if e.Kind == Alias {
			kind = 'a'
		}
		h.Write([]byte(strings.ToLower(strings.TrimSpace(e.Address))))
		h.Write([]byte{0})
		h.Write([]byte(e.Name))
		h.Write([]byte{0, kind, chat, '\n'})
	}
	v.Fingerprint = hex.EncodeToString(h.Sum(nil)[:8])
	return v
}

// compareEntries orders aliases before users, then by display name and
// address, case-insensitively; the address breaks ties so that the order,
// and so the fingerprint, does not depend on the order the host listed.
func compareEntries(a, b Entry) int {
	if (a.Kind == Alias) != (b.Kind == Alias) {
		if a.Kind == Alias {
			return -1
		}
		return 1
	}
	al, bl := strings.ToLower(strings.TrimSpace(a.Address)), strings.ToLower(strings.TrimSpace(b.Address))
	an, bn := strings.ToLower(a.Name), strings.ToLower(b.Name)
	if an == "" {
		an = al
	}
	if bn == "" {
		bn = bl
	}
	return cmp.Or(strings.Compare(an, bn), strings.Compare(al, bl), strings.Compare(a.Name, b.Name))
}
