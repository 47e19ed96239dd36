package roster

import (
	"context"
	"strings"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
)

// domainIndex is the part of a domain's directory the domain roster shows,
// with the addresses parsed once per directory change rather than at every
// roster request.
type domainIndex struct {
	fingerprint string
	contacts    []domainContact // the view's order: aliases, then users
	byJID       map[jid.JID]int
}

type domainContact struct {
	jid   jid.JID
	name  string
	alias bool
}

func (x *domainIndex) len() int {
	if x == nil {
		return 0
	}
	return len(x.contacts)
}

func (x *domainIndex) fingerprintOrEmpty() string {
	if x == nil {
		return ""
	}
	return x.fingerprint
}

func buildIndex(v *account.DomainView) *domainIndex {
	x := &domainIndex{
		fingerprint: v.Fingerprint,
		contacts:    make([]domainContact, 0, len(v.Entries)),
		byJID:       make(map[jid.JID]int, len(v.Entries)),
	}
	for _, e := range v.Entries {
		if e.Kind != account.Alias && !e.ChatEnabled {
			continue
		}
		j, err := jid.Parse(strings.TrimSpace(e.Address))
		if err != nil || j.Local() == "" || !j.IsBare() || j.Domain() != v.Domain {
			continue
		}
		if _, dup := x.byJID[j]; dup {
			continue
		}
		x.byJID[j] = len(x.contacts)
		x.contacts = append(x.contacts, domainContact{jid: j, name: e.Name, alias: e.Kind == account.Alias})
	}
	return x
}

// domain returns the index of a domain's current directory view, building
// it when the directory changed since the last call.
func (s *Service) domain(ctx context.Context, domain string) (*domainIndex, error) {
	v, err := s.dir.Domain(ctx, domain)
	if err != nil {
		return nil, wrap(err)
	}
	s.idxMu.Lock()
	x := s.idx[v.Domain]
	s.idxMu.Unlock()
	if x != nil && x.fingerprint == v.Fingerprint {
		return x, nil
	}
	// Built outside the lock; two callers may both build after a change,
	// and the later one wins, which is as good.
	x = buildIndex(v)
	s.idxMu.Lock()
	s.idx[v.Domain] = x
	s.idxMu.Unlock()
	return x, nil
}

// domainContact returns contact's entry in owner's domain roster, or nil
// when contact is not a domain contact of owner (or there is no domain
// roster).
func (s *Service) domainContact(ctx context.Context, owner, contact jid.JID) (*domainContact, error) {
	if !s.domainRoster || contact.Domain() != owner.Domain() || contact.Local() == "" || contact == owner {
		return nil, nil
	}
	x, err := s.domain(ctx, owner.Domain())
	if err != nil {
		return nil, err
	}
	i, ok := x.byJID[contact]
	if !ok {
		return nil, nil
	}
	return &x.contacts[i], nil
}
