package roster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// ErrNotAllowed is wrapped by errors for requests the roster refuses, such
// as adding the owner to their own roster. XMPP answers it with
// not-allowed.
var ErrNotAllowed = errors.New("roster: not allowed")

// Config configures a Service. The zero value of each optional field means
// its documented default.
type Config struct {
	// Store keeps the rosters. Required.
	Store storage.Rosters
	// Directory is the host's directory, cached. Required when
	// DomainRoster is set, unused otherwise.
	Directory *account.Cache
	// DomainRoster puts every chat-enabled user and every alias of the
	// owner's domain in the owner's roster, mutually subscribed.
	DomainRoster bool
	// UsersGroup is the roster group of the domain's users. Default: the
	// domain name.
	UsersGroup string
	// AliasGroup is the roster group of the domain's aliases. Default:
	// "Aliases".
	AliasGroup string
}

// Item is one roster item as the owner's client sees it.
type Item struct {
	JID  jid.JID
	Name string
	// Groups has no duplicates; nil means no group.
	Groups       []string
	Subscription storage.Subscription
	// Ask: the owner's subscription request awaits an answer
	// (ask='subscribe').
	Ask bool
	// Approved: the owner pre-approved a request from this contact
	// (approved='true', RFC 6121 3.4).
	Approved bool
	// Domain: the item comes from the domain roster (Config.DomainRoster).
	Domain bool
	// Removed: the item was deleted (a push with subscription='remove');
	// only JID is meaningful then.
	Removed bool
}

// Outcome is what the XMPP edge must do after Service.Outbound or
// Service.Inbound; the fields mirror Step's.
type Outcome struct {
	// Route (outbound): send the stanza on to the contact, stamped with the
	// owner's bare JID.
	Route bool
	// Deliver (inbound): deliver the stanza to the owner's available
	// resources. Requests are also kept; see Service.Pending.
	Deliver bool
	// Push is the roster push for the owner's interested resources, nil
	// when the item the clients see did not change.
	Push *Item
	// AutoReply, when not zero, is a stanza to send to the contact from
	// the owner's bare JID on the owner's behalf.
	AutoReply SubType
	// SendPresence: send the owner's current presence from each available
	// resource to the contact (RFC 6121 3.1.5).
	SendPresence bool
	// SendUnavailable: send presence of type unavailable from each of the
	// owner's available resources to the contact, before routing the
	// stanza (RFC 6121 3.2.2, 3.3.3).
	SendUnavailable bool
}

// Request is a subscription request awaiting the owner's answer.
type Request struct {
	From   jid.JID
	Status string
}

// RemoveResult is the outcome of Service.Remove (RFC 6121 2.5.2).
type RemoveResult struct {
	// Item is the roster push to send, with Removed set.
	Item Item
	// SendUnsubscribe: send presence of type unsubscribe to the contact.
	SendUnsubscribe bool
	// SendUnsubscribed: send presence of type unsubscribed to the contact
	// (preceded, as for any cancellation, by unavailable presence from the
	// owner's available resources: RFC 6121 3.2.2).
	SendUnsubscribed bool
}

// stripes is the number of owner locks; owners hashing to one stripe wait
// for each other, which is harmless at this size.
const stripes = 64

// Service keeps users' rosters: items and groups, the RFC 6121 presence
// subscription state machine, and the domain roster.
//
// A Service is safe for concurrent use. Each read-modify-write of one
// owner's roster (Set, Remove, Outbound, Inbound) holds a lock for that
// owner, so concurrent changes to one roster are applied one after the
// other and none is lost. The lock covers one process: several processes
// sharing one store need their own coordination. Reads (Get, Version,
// Pending, PresenceTargets, ProbeTargets, CanSee) take no lock and see each
// change whole or not at all, as far as the store does.
type Service struct {
	store        storage.Rosters
	dir          *account.Cache
	domainRoster bool
	usersGroup   string
	aliasGroup   string

	seed  maphash.Seed
	locks [stripes]sync.Mutex

	idxMu sync.Mutex
	idx   map[string]*domainIndex // domain -> index of its current view
}

// New returns a Service. It panics when Store is nil, or when DomainRoster
// is set without a Directory: both are programming errors of the caller.
func New(cfg Config) *Service {
	if cfg.Store == nil {
		panic("roster: Config.Store is nil")
	}
	if cfg.DomainRoster && cfg.Directory == nil {
		panic("roster: Config.DomainRoster needs Config.Directory")
	}
	if cfg.AliasGroup == "" {
		cfg.AliasGroup = "Aliases"
	}
	return &Service{
		store:        cfg.Store,
		dir:          cfg.Directory,
		domainRoster: cfg.DomainRoster,
		usersGroup:   cfg.UsersGroup,
		aliasGroup:   cfg.AliasGroup,
		seed:         maphash.MakeSeed(),
		idx:          make(map[string]*domainIndex),
	}
}

func (s *Service) lock(owner string) *sync.Mutex {
	return &s.locks[maphash.String(s.seed, owner)%stripes]
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("roster: %w", err)
}

func notFound(contact jid.JID) error {
	return fmt.Errorf("roster: no item for %s: %w", contact, storage.ErrNotFound)
}

// item reads one stored record; nil when there is none.
func (s *Service) item(ctx context.Context, owner, contact string) (*storage.RosterItem, error) {
	it, err := s.store.RosterItem(ctx, owner, contact)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err)
	}
	return &it, nil
}

// apply writes a step's record, or deletes it.
func (s *Service) apply(ctx context.Context, owner, contact string, st Step) error {
	if !st.Write {
		return nil
	}
	if st.Item == nil {
		_, err := s.store.DeleteRosterItem(ctx, owner, contact)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return wrap(err)
	}
	st.Item.Contact = contact
	_, err := s.store.PutRosterItem(ctx, owner, *st.Item)
	return wrap(err)
}

func checkPair(owner, contact jid.JID) (jid.JID, jid.JID, error) {
	owner, contact = owner.Bare(), contact.Bare()
	if owner.IsZero() || contact.IsZero() {
		return owner, contact, fmt.Errorf("roster: empty JID: %w", jid.ErrMalformed)
	}
	if owner == contact {
		return owner, contact, fmt.Errorf("roster: %s in its own roster: %w", owner, ErrNotAllowed)
	}
	return owner, contact, nil
}

func itemOf(contact jid.JID, it storage.RosterItem) Item {
	return Item{
		JID:          contact,
		Name:         it.Name,
		Groups:       slices.Clone(it.Groups),
		Subscription: it.Subscription,
		Ask:          it.AskOut,
		Approved:     it.Approved,
	}
}

// Get returns the owner's roster as the owner's clients see it, and its
// version (XEP-0237, RFC 6121 2.6): an opaque string that changes whenever
// anything in the returned list does, including the directory behind the
// domain roster. Domain contacts come first, aliases before users, in the
// directory's order; the owner's own items follow, ordered by JID.
//
// Under the domain roster every chat-enabled user of the owner's domain but
// the owner, and every alias, is an item with subscription "both". The
// owner may rename or regroup such an item (Set) or remove it (Remove);
// both are kept as a stored record that overrides the directory.
func (s *Service) Get(ctx context.Context, owner jid.JID) ([]Item, string, error) {
	owner = owner.Bare()
	stored, ver, err := s.store.Roster(ctx, owner.String())
	if err != nil {
		return nil, "", wrap(err)
	}
	var idx *domainIndex
	if s.domainRoster {
		if idx, err = s.domain(ctx, owner.Domain()); err != nil {
			return nil, "", err
		}
	}
	items := make([]Item, 0, len(stored)+idx.len())
	var byJID map[jid.JID]*storage.RosterItem
	if idx != nil && len(stored) > 0 {
		byJID = make(map[jid.JID]*storage.RosterItem, len(stored))
		for i := range stored {
			if j, err := jid.Parse(stored[i].Contact); err == nil {
				byJID[j] = &stored[i]
			}
		}
	}
	if idx != nil {
		// One backing array for the default groups of all domain items.
		defaults := make([]string, len(idx.contacts))
		users := cmp.Or(s.usersGroup, owner.Domain())
		for i := range idx.contacts {
			c := &idx.contacts[i]
			if c.jid == owner {
				continue
			}
			st := byJID[c.jid]
			if st != nil && st.Hidden {
				continue
			}
			defaults[i] = users
			if c.alias {
				defaults[i] = s.aliasGroup
			}
			items = append(items, domainItem(c, st, defaults[i:i+1:i+1]))
		}
	}
	first := len(items)
	for _, st := range stored {
		if st.Hidden {
			continue
		}
		j, err := jid.Parse(st.Contact)
		if err != nil || j == owner {
			continue
		}
		if idx != nil {
			if _, ok := idx.byJID[j]; ok {
				continue // listed above
			}
		}
		items = append(items, itemOf(j, st))
	}
	slices.SortFunc(items[first:], func(a, b Item) int { return strings.Compare(a.JID.String(), b.JID.String()) })
	return items, s.versionString(ver, idx.fingerprintOrEmpty()), nil
}

func domainItem(c *domainContact, st *storage.RosterItem, groups []string) Item {
	it := Item{JID: c.jid, Name: c.name, Groups: groups, Subscription: storage.SubBoth, Domain: true}
	if st != nil {
		if st.Name != "" {
			it.Name = st.Name
		}
		if len(st.Groups) > 0 {
			it.Groups = slices.Clone(st.Groups)
		}
	}
	return it
}

// Version returns the version string Get would return, without building the
// item list: one store read and a look at the cached directory. When the
// store also implements
//
//	RosterVersion(ctx context.Context, owner string) (uint64, error)
//
// that is used instead of reading the owner's items.
func (s *Service) Version(ctx context.Context, owner jid.JID) (string, error) {
	owner = owner.Bare()
	var ver uint64
	var err error
	if v, ok := s.store.(interface {
		RosterVersion(ctx context.Context, owner string) (uint64, error)
	}); ok {
		ver, err = v.RosterVersion(ctx, owner.String())
	} else {
		_, ver, err = s.store.Roster(ctx, owner.String())
	}
	if err != nil {
		return "", wrap(err)
	}
	fp := ""
	if s.domainRoster {
		view, err := s.dir.Domain(ctx, owner.Domain())
		if err != nil {
			return "", wrap(err)
		}
		fp = view.Fingerprint
	}
	return s.versionString(ver, fp), nil
}

func (s *Service) versionString(ver uint64, fingerprint string) string {
	v := strconv.FormatUint(ver, 10)
	if s.domainRoster {
		v += "-" + fingerprint
	}
	return v
}

// Set creates or updates the owner's item for contact with a name and
// groups (a roster set, RFC 6121 2.3): the subscription is left as it is,
// and a new item has subscription "none". Duplicate and empty groups are
// dropped. An item that was hidden (a pending request from someone the
// owner had not added, or a domain contact the owner removed) is shown
// again. For a domain contact an empty name or group list means the
// directory's. The owner's own JID is refused with an error wrapping
// ErrNotAllowed.
func (s *Service) Set(ctx context.Context, owner, contact jid.JID, name string, groups []string) (Item, error) {
	owner, contact, err := checkPair(owner, contact)
	if err != nil {
		return Item{}, err
	}
	dc, err := s.domainContact(ctx, owner, contact)
	if err != nil {
		return Item{}, err
	}
	okey, ckey := owner.String(), contact.String()
	mu := s.lock(okey)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.item(ctx, okey, ckey)
	if err != nil {
		return Item{}, err
	}
	next := storage.RosterItem{Contact: ckey}
	if cur != nil {
		next = clone(*cur)
	}
	next.Name, next.Groups, next.Hidden = name, cleanGroups(groups), false
	if cur == nil || !equalItems(*cur, next) {
		if _, err := s.store.PutRosterItem(ctx, okey, next); err != nil {
			return Item{}, wrap(err)
		}
	}
	if dc != nil {
		return domainItem(dc, &next, []string{s.defaultGroup(owner, dc)}), nil
	}
	return itemOf(contact, next), nil
}

func (s *Service) defaultGroup(owner jid.JID, c *domainContact) string {
	if c.alias {
		return s.aliasGroup
	}
	return cmp.Or(s.usersGroup, owner.Domain())
}

func cleanGroups(groups []string) []string {
	var out []string
	for _, g := range groups {
		if g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// Remove deletes the owner's item for contact (RFC 6121 2.5.2) and reports
// the push to send and the stanzas the edge must send to the contact:
// unsubscribe when the owner is subscribed to the contact or asked to be,
// unsubscribed when the contact is subscribed to the owner or asked to be.
// (RFC 6121 names the subscribed cases; a pending request is answered the
// same way because deleting the item forgets it.) A missing or hidden item
// gives an error wrapping storage.ErrNotFound (item-not-found).
//
// Domain contacts are always mutually subscribed, by the host's policy
// rather than by agreement, so removing one only hides it from this
// owner's roster: a Hidden record is stored, nothing is sent, and presence
// still flows within the domain. Set or a subscribe shows it again.
func (s *Service) Remove(ctx context.Context, owner, contact jid.JID) (RemoveResult, error) {
	owner, contact, err := checkPair(owner, contact)
	if err != nil {
		return RemoveResult{}, err
	}
	dc, err := s.domainContact(ctx, owner, contact)
	if err != nil {
		return RemoveResult{}, err
	}
	okey, ckey := owner.String(), contact.String()
	mu := s.lock(okey)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.item(ctx, okey, ckey)
	if err != nil {
		return RemoveResult{}, err
	}
	if (cur != nil && cur.Hidden) || (cur == nil && dc == nil) {
		return RemoveResult{}, notFound(contact)
	}
	removed := Item{JID: contact, Removed: true, Domain: dc != nil}
	if dc != nil {
		if _, err := s.store.PutRosterItem(ctx, okey, storage.RosterItem{Contact: ckey, Hidden: true}); err != nil {
			return RemoveResult{}, wrap(err)
		}
		return RemoveResult{Item: removed}, nil
	}
	if _, err := s.store.DeleteRosterItem(ctx, okey, ckey); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return RemoveResult{}, notFound(contact)
		}
		return RemoveResult{}, wrap(err)
	}
	state := StateOf(*cur)
	return RemoveResult{
		Item:             removed,
		SendUnsubscribe:  cur.Subscription == storage.SubTo || cur.Subscription == storage.SubBoth || cur.AskOut,
		SendUnsubscribed: hasFrom(state) || cur.PendingIn,
	}, nil
}

func validType(t SubType) error {
	if t < Subscribe || t > Unsubscribed {
		return fmt.Errorf("roster: invalid subscription type %d", uint8(t))
	}
	return nil
}

// Outbound processes a subscription stanza of type t that the owner sends
// to contact (RFC 6121 3.1.2, 3.1.5, 3.2.2, 3.3.2, 3.4; Appendix A.2): it
// updates the owner's record and reports what the edge must do. The state
// changes are OutboundStep's.
//
// Domain contacts are mutually subscribed by policy, so nothing is routed
// to them: a subscribe shows a domain contact the owner had removed (and
// pushes it), and unsubscribe, subscribed and unsubscribed change nothing.
func (s *Service) Outbound(ctx context.Context, owner, contact jid.JID, t SubType) (Outcome, error) {
	if err := validType(t); err != nil {
		return Outcome{}, err
	}
	owner, contact, err := checkPair(owner, contact)
	if err != nil {
		return Outcome{}, err
	}
	dc, err := s.domainContact(ctx, owner, contact)
	if err != nil {
		return Outcome{}, err
	}
	okey, ckey := owner.String(), contact.String()
	mu := s.lock(okey)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.item(ctx, okey, ckey)
	if err != nil {
		return Outcome{}, err
	}
	if dc != nil {
		if t != Subscribe || cur == nil || !cur.Hidden {
			return Outcome{}, nil
		}
		if err := s.apply(ctx, okey, ckey, Step{Write: true}); err != nil {
			return Outcome{}, err
		}
		it := domainItem(dc, nil, []string{s.defaultGroup(owner, dc)})
		return Outcome{Push: &it}, nil
	}
	st := OutboundStep(cur, t)
	if err := s.apply(ctx, okey, ckey, st); err != nil {
		return Outcome{}, err
	}
	return outcome(contact, st), nil
}

func outcome(contact jid.JID, st Step) Outcome {
	out := Outcome{
		Route:           st.Route,
		Deliver:         st.Deliver,
		AutoReply:       st.AutoReply,
		SendPresence:    st.SendPresence,
		SendUnavailable: st.SendUnavailable,
	}
	if st.Push {
		it := Item{JID: contact, Removed: true}
		if st.Item != nil && !st.Item.Hidden {
			it = itemOf(contact, *st.Item)
		}
		out.Push = &it
	}
	return out
}

// Inbound processes a subscription stanza of type t that contact sent to
// the owner, with its status text (RFC 6121 3.1.3, 3.1.6, 3.2.3, 3.3.3,
// 3.4; Appendix A.3). The state changes are InboundStep's. A subscription
// request is stored before Inbound returns, so it survives the owner being
// offline: Pending lists it at each login until the owner answers.
//
// A subscription request from a domain contact is approved at once
// (AutoReply Subscribed); other stanzas from domain contacts change
// nothing, since the domain roster keeps them mutually subscribed.
func (s *Service) Inbound(ctx context.Context, owner, contact jid.JID, t SubType, status string) (Outcome, error) {
	if err := validType(t); err != nil {
		return Outcome{}, err
	}
	owner, contact, err := checkPair(owner, contact)
	if err != nil {
		return Outcome{}, err
	}
	dc, err := s.domainContact(ctx, owner, contact)
	if err != nil {
		return Outcome{}, err
	}
	if dc != nil {
		if t == Subscribe {
			return Outcome{AutoReply: Subscribed, SendPresence: true}, nil
		}
		return Outcome{}, nil
	}
	okey, ckey := owner.String(), contact.String()
	mu := s.lock(okey)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.item(ctx, okey, ckey)
	if err != nil {
		return Outcome{}, err
	}
	st := InboundStep(cur, t, status)
	if err := s.apply(ctx, okey, ckey, st); err != nil {
		return Outcome{}, err
	}
	return outcome(contact, st), nil
}

// Pending returns the subscription requests the owner has not answered,
// ordered by JID, to deliver again at each login (RFC 6121 3.1.3). Requests
// stored from domain contacts before the domain roster was turned on are
// left out: those are approved by policy.
func (s *Service) Pending(ctx context.Context, owner jid.JID) ([]Request, error) {
	var out []Request
	err := s.scan(ctx, owner, func(j jid.JID, it *storage.RosterItem) {
		if it.PendingIn {
			out = append(out, Request{From: j, Status: it.PendingInStatus})
		}
	})
	slices.SortFunc(out, func(a, b Request) int { return strings.Compare(a.From.String(), b.From.String()) })
	return out, err
}

// PresenceTargets returns who receives the owner's presence broadcasts:
// the contacts with subscription "from" or "both", and domain=true when,
// besides those, every chat-enabled user of the owner's domain does (the
// domain roster). Domain contacts are not listed one by one: the edge
// knows who of the domain is online.
func (s *Service) PresenceTargets(ctx context.Context, owner jid.JID) (subscribers []jid.JID, domain bool, err error) {
	err = s.scan(ctx, owner, func(j jid.JID, it *storage.RosterItem) {
		if it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth {
			subscribers = append(subscribers, j)
		}
	})
	return subscribers, s.domainRoster, err
}

// ProbeTargets returns whose presence the owner's server probes at login:
// the contacts with subscription "to" or "both", and domain=true when,
// besides those, every chat-enabled user of the owner's domain.
func (s *Service) ProbeTargets(ctx context.Context, owner jid.JID) (contacts []jid.JID, domain bool, err error) {
	err = s.scan(ctx, owner, func(j jid.JID, it *storage.RosterItem) {
		if it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth {
			contacts = append(contacts, j)
		}
	})
	return contacts, s.domainRoster, err
}

// scan calls f for each stored record of owner other than domain contacts'.
func (s *Service) scan(ctx context.Context, owner jid.JID, f func(jid.JID, *storage.RosterItem)) error {
	owner = owner.Bare()
	stored, _, err := s.store.Roster(ctx, owner.String())
	if err != nil {
		return wrap(err)
	}
	var idx *domainIndex
	if s.domainRoster && len(stored) > 0 {
		if idx, err = s.domain(ctx, owner.Domain()); err != nil {
			return err
		}
	}
	for i := range stored {
		j, err := jid.Parse(stored[i].Contact)
		if err != nil || j == owner {
			continue
		}
		if idx != nil && j.Domain() == owner.Domain() {
			if _, ok := idx.byJID[j]; ok {
				continue
			}
		}
		f(j, &stored[i])
	}
	return nil
}

// CanSee reports whether watcher may have owner's presence, for answering a
// probe: watcher is owner, or owner's record of watcher has subscription
// "from" or "both", or, under the domain roster, watcher is a chat-enabled
// user of owner's domain.
func (s *Service) CanSee(ctx context.Context, watcher, owner jid.JID) (bool, error) {
	watcher, owner = watcher.Bare(), owner.Bare()
	if watcher == owner {
		return true, nil
	}
	dc, err := s.domainContact(ctx, owner, watcher)
	if err != nil {
		return false, err
	}
	if dc != nil && !dc.alias {
		return true, nil
	}
	it, err := s.item(ctx, owner.String(), watcher.String())
	if err != nil || it == nil {
		return false, err
	}
	return it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth, nil
}
