package roster

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/storage"
)

// memRosters is a small storage.Rosters for these tests (storage/memstore
// is written separately). With yield set it gives up the processor between
// reading and answering, to widen the window a missing lock would leave.
type memRosters struct {
	mu      sync.Mutex
	items   map[string]map[string]storage.RosterItem
	vers    map[string]uint64
	yield   bool
	failPut error

	rosterCalls atomic.Int64
}

func newMemRosters() *memRosters {
	return &memRosters{items: map[string]map[string]storage.RosterItem{}, vers: map[string]uint64{}}
}

func cloneItem(it storage.RosterItem) storage.RosterItem {
	it.Groups = slices.Clone(it.Groups)
	return it
}

func (m *memRosters) Roster(ctx context.Context, owner string) ([]storage.RosterItem, uint64, error) {
	m.rosterCalls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.RosterItem
	for _, it := range m.items[owner] {
		out = append(out, cloneItem(it))
	}
	slices.SortFunc(out, func(a, b storage.RosterItem) int { return cmp.Compare(a.Contact, b.Contact) })
	return out, m.vers[owner], nil
}

func (m *memRosters) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	m.mu.Lock()
	it, ok := m.items[owner][contact]
	m.mu.Unlock()
	if m.yield {
		runtime.Gosched()
	}
	if !ok {
		return storage.RosterItem{}, storage.ErrNotFound
	}
	return cloneItem(it), nil
}

func (m *memRosters) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		return 0, m.failPut
	}
	if m.items[owner] == nil {
		m.items[owner] = map[string]storage.RosterItem{}
	}
	m.items[owner][item.Contact] = cloneItem(item)
	m.vers[owner]++
	return m.vers[owner], nil
}

func (m *memRosters) DeleteRosterItem(ctx context.Context, owner, contact string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[owner][contact]; !ok {
		return 0, storage.ErrNotFound
	}
	delete(m.items[owner], contact)
	m.vers[owner]++
	return m.vers[owner], nil
}

func (m *memRosters) get(owner, contact string) (storage.RosterItem, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[owner][contact]
	return it, ok
}

func (m *memRosters) version(owner string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vers[owner]
}

// sliceDir is an account.Directory over a slice of entries.
type sliceDir struct {
	mu      sync.Mutex
	entries []account.Entry
}

func (d *sliceDir) set(e []account.Entry) {
	d.mu.Lock()
	d.entries = slices.Clone(e)
	d.mu.Unlock()
}

func (d *sliceDir) add(e ...account.Entry) {
	d.mu.Lock()
	d.entries = append(d.entries, e...)
	d.mu.Unlock()
}

func (d *sliceDir) Lookup(ctx context.Context, address string) (account.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.entries {
		if strings.EqualFold(e.Address, address) {
			return e, nil
		}
	}
	return account.Entry{}, fmt.Errorf("%s: %w", address, account.ErrNotFound)
}

func (d *sliceDir) List(ctx context.Context, domain string) ([]account.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []account.Entry
	for _, e := range d.entries {
		if strings.HasSuffix(strings.ToLower(e.Address), "@"+domain) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (d *sliceDir) Search(ctx context.Context, domain, query string, limit int) ([]account.Entry, error) {
	return nil, nil
}

func (d *sliceDir) Members(ctx context.Context, alias string) ([]string, error) {
	return nil, nil
}
