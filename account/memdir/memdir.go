// Package memdir is an in-memory host directory: users, aliases and their
// passwords, held in a map. It implements account.Directory,
// account.Authenticator and account.SCRAMProvider, so a Parley server can
// run on it with nothing else from the host.
//
// It is meant for tests, demos and the example host, and as a reference
// for integrators writing their own: other packages' tests build one in a
// few lines.
//
//	dir := memdir.New()
//	dir.AddUser("alice@example.com", "Alice Liddell", "secret", true)
//	dir.AddAlias("sales@example.com", "Sales", "alice@example.com")
//	srv, err := parley.New(parley.Config{
//		Domains:       []string{"example.com"},
//		Directory:     dir,
//		Authenticator: dir,
//		// ...
//	})
//
// # Passwords
//
// A user's password is turned into SCRAM credentials (RFC 5802: a random
// 16-byte salt, 4096 PBKDF2 iterations, StoredKey and ServerKey for SHA-1
// and SHA-256). PBKDF2 is slow on purpose, around a millisecond per user,
// so AddUser does not derive: a user's credentials are derived the first
// time they are needed (by a login or by Warm), once, even when many
// logins for that user arrive at the same moment. Until then the Dir holds
// the password itself in memory; afterwards only the salt and keys.
// CheckPassword recomputes the SHA-256 StoredKey from the password it is
// given and compares it in constant time, so one derivation serves SCRAM
// and PLAIN alike.
//
// A host with many users calls Warm in the background at start, and may
// keep the derived keys between runs with ExportCredentials and
// ImportCredentials.
package memdir

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
)

// Dir is an in-memory directory of users and aliases. The zero value is
// not usable; call New. All methods are safe for concurrent use.
type Dir struct {
	mu      sync.RWMutex
	entries map[string]*entry // normalised address -> entry

	// dummySalt is used to spend the same PBKDF2 work on unknown users as
	// on known ones, so that timing does not tell them apart.
	dummySalt []byte
	// derivations counts PBKDF2 derivations of a user's keys, for tests.
	derivations atomic.Int64
}

type entry struct {
	e       account.Entry // Address is normalised
	lname   string        // lower-cased name, for Search
	domain  string
	members []string // aliases only
	cred    *cred    // users only; replaced by SetPassword
}

// New returns an empty Dir.
func New() *Dir {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	return &Dir{entries: make(map[string]*entry), dummySalt: salt}
}

// normalize turns a mail address into the form Parley uses for keys: the
// localpart case-mapped as RFC 7622 asks, the domain lower-cased.
func normalize(address string) (string, error) {
	j, err := jid.Parse(strings.TrimSpace(address))
	if err != nil || j.Local() == "" || j.Resource() != "" {
		return "", fmt.Errorf("memdir: %q is not a mail address (user@domain)", address)
	}
	return j.Address(), nil
}

// find returns the entry for address, or nil. The caller holds d.mu.
func (d *Dir) find(address string) *entry {
	if e := d.entries[strings.ToLower(address)]; e != nil {
		return e
	}
	// Addresses that need more than lower-casing (width mapping, NFC).
	if n, err := normalize(address); err == nil {
		return d.entries[n]
	}
	return nil
}

func (d *Dir) add(address, name string, kind account.Kind, chat bool, members []string, c *cred) error {
	addr, err := normalize(address)
	if err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	e := &entry{
		e:       account.Entry{Address: addr, Name: name, Kind: kind, ChatEnabled: chat && kind == account.User},
		lname:   strings.ToLower(name),
		domain:  addr[strings.LastIndexByte(addr, '@')+1:],
		members: members,
		cred:    c,
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.entries[addr] != nil {
		return fmt.Errorf("memdir: %s already exists", addr)
	}
	d.entries[addr] = e
	return nil
}

// AddUser adds a user who can log in with password. The address is
// normalised (lower-cased); it is an error if it is malformed, already
// taken by a user or alias, or if the password is empty.
func (d *Dir) AddUser(address, name, password string, chatEnabled bool) error {
	c, err := newCred(password)
	if err != nil {
		return fmt.Errorf("memdir: %s: %w", address, err)
	}
	return d.add(address, name, account.User, chatEnabled, nil, c)
}

// AddAlias adds an alias whose mail goes to members. Members are
// normalised but need not exist in the Dir (an alias may forward to
// another domain). An alias cannot log in.
func (d *Dir) AddAlias(address, name string, members ...string) error {
	ms := make([]string, 0, len(members))
	for _, m := range members {
		n, err := normalize(m)
		if err != nil {
			return fmt.Errorf("memdir: alias %s: member: %w", address, err)
		}
		if !slices.Contains(ms, n) {
			ms = append(ms, n)
		}
	}
	return d.add(address, name, account.Alias, false, ms, nil)
}

// SetChatEnabled turns chat on or off for a user.
func (d *Dir) SetChatEnabled(address string, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.find(address)
	if e == nil || e.e.Kind != account.User {
		return fmt.Errorf("memdir: no user %s: %w", address, account.ErrNotFound)
	}
	e.e.ChatEnabled = on
	return nil
}

// SetPassword changes a user's password. The user gets a new salt; keys
// derived or imported for the old password are dropped, and an export made
// before the change is no longer accepted by ImportCredentials.
func (d *Dir) SetPassword(address, password string) error {
	c, err := newCred(password)
	if err != nil {
		return fmt.Errorf("memdir: %s: %w", address, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.find(address)
	if e == nil || e.e.Kind != account.User {
		return fmt.Errorf("memdir: no user %s: %w", address, account.ErrNotFound)
	}
	e.cred = c
	return nil
}

// Remove deletes a user or alias. Aliases that list a removed user keep
// the address among their members, as a mail server's forwarding would.
func (d *Dir) Remove(address string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.find(address)
	if e == nil {
		return fmt.Errorf("memdir: no user or alias %s: %w", address, account.ErrNotFound)
	}
	delete(d.entries, e.e.Address)
	return nil
}

// Lookup returns the entry for address, or an error wrapping
// account.ErrNotFound. It implements account.Directory.
func (d *Dir) Lookup(ctx context.Context, address string) (account.Entry, error) {
	if err := ctx.Err(); err != nil {
		return account.Entry{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if e := d.find(address); e != nil {
		return e.e, nil
	}
	return account.Entry{}, fmt.Errorf("memdir: %s: %w", address, account.ErrNotFound)
}

// List returns every user and alias of domain, ordered by address. It
// implements account.Directory.
func (d *Dir) List(ctx context.Context, domain string) ([]account.Entry, error) {
	return d.collect(ctx, domain, func(*entry) bool { return true }, 0)
}

// Search returns up to limit entries of domain (all of them when limit is
// zero or less) whose display name or address contains query, compared
// case-insensitively, ordered by address. It implements account.Directory.
func (d *Dir) Search(ctx context.Context, domain, query string, limit int) ([]account.Entry, error) {
	q := strings.ToLower(strings.TrimSpace(query))
	return d.collect(ctx, domain, func(e *entry) bool {
		return strings.Contains(e.e.Address, q) || strings.Contains(e.lname, q)
	}, limit)
}

func (d *Dir) collect(ctx context.Context, domain string, match func(*entry) bool, limit int) ([]account.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	domain = strings.ToLower(strings.TrimSpace(domain))
	var out []account.Entry
	d.mu.RLock()
	for _, e := range d.entries {
		if e.domain == domain && match(e) {
			out = append(out, e.e)
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b account.Entry) int { return cmp.Compare(a.Address, b.Address) })
	if limit > 0 && len(out) > limit {
		out = out[:limit:limit]
	}
	return out, nil
}

// Members returns the member addresses of an alias, or an error wrapping
// account.ErrNotFound when address is not an alias. It implements
// account.Directory.
func (d *Dir) Members(ctx context.Context, alias string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	e := d.find(alias)
	if e == nil || e.e.Kind != account.Alias {
		return nil, fmt.Errorf("memdir: %s is not an alias: %w", alias, account.ErrNotFound)
	}
	return slices.Clone(e.members), nil
}

// user returns the credentials holder of a user, or nil for an unknown
// address or an alias.
func (d *Dir) user(address string) *cred {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if e := d.find(address); e != nil {
		return e.cred
	}
	return nil
}

var errNoPassword = errors.New("empty password")
