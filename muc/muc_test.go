package muc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/memstore"
)

// fakeWire records what rooms send, per recipient.
type fakeWire struct {
	mu  sync.Mutex
	got map[jid.JID][]any
}

func newFakeWire() *fakeWire { return &fakeWire{got: make(map[jid.JID][]any)} }

func (w *fakeWire) Presence(to jid.JID, p *Presence) {
	w.mu.Lock()
	w.got[to] = append(w.got[to], *p)
	w.mu.Unlock()
}

func (w *fakeWire) Message(to jid.JID, m *Message) {
	w.mu.Lock()
	w.got[to] = append(w.got[to], *m)
	w.mu.Unlock()
}

func (w *fakeWire) Replay(m storage.ArchivedMessage) ([]byte, error) { return m.Data, nil }

func (w *fakeWire) take(to jid.JID) []any {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got[to]
	delete(w.got, to)
	return out
}

var (
	ctx      = context.Background()
	teamRoom = jid.MustParse("team@conference.example.com")
)

func user(name string) jid.JID { return jid.MustParse(name + "@example.com/desk") }

func enter(t *testing.T, s *Service, who jid.JID, nick string) {
	t.Helper()
	if err := s.Enter(ctx, Entry{Room: teamRoom, Nick: nick, From: who, MUC: true, History: NoHistoryLimit}); err != nil {
		t.Fatalf("%s entering as %s: %v", who, nick, err)
	}
}

// newRoomService makes a service with an unlocked room owned by alice,
// who is in it.
func newRoomService(t *testing.T, cfg Config, rc RoomConfig) (*Service, *fakeWire) {
	t.Helper()
	w := newFakeWire()
	s := New(cfg, w)
	enter(t, s, user("alice"), "alice")
	if err := s.Configure(ctx, teamRoom, user("alice"), rc, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.take(user("alice"))
	return s, w
}

func TestEnterSendsRosterSelfHistorySubject(t *testing.T) {
	s, w := newRoomService(t, Config{}, DefaultRoomConfig())
	enter(t, s, user("bob"), "bob")
	if err := s.Speak(ctx, teamRoom, user("bob"), func(nick, id string) Said {
		return Said{Data: []byte("hi from " + nick), Archived: []byte("x"), Body: "hi"}
	}); err != nil {
		t.Fatal(err)
	}
	w.take(user("bob"))
	enter(t, s, user("carol"), "carol")
	got := w.take(user("carol"))
	var kinds []string
	for _, g := range got {
		switch v := g.(type) {
		case Presence:
			if v.Nick == "carol" {
				kinds = append(kinds, fmt.Sprintf("self%v", v.Codes))
			} else {
				kinds = append(kinds, "presence:"+v.Nick)
			}
		case Message:
			kinds = append(kinds, fmt.Sprint(v.Kind))
		}
	}
	want := []string{"presence:alice", "presence:bob", "self[110]", fmt.Sprint(History), fmt.Sprint(Subject)}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("entering sends %v, want %v", kinds, want)
	}
}

func TestHistoryLimits(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	cfg := DefaultRoomConfig()
	cfg.MaxHistory = 25
	s, _ := newRoomService(t, Config{Now: func() time.Time { return clock }}, cfg)
	for i := 0; i < 30; i++ {
		clock = now.Add(time.Duration(i) * time.Minute)
		s.Speak(ctx, teamRoom, user("alice"), func(nick, id string) Said {
			return Said{Data: make([]byte, 90), Archived: []byte("x"), Body: "b"}
		})
	}
	r := s.rooms[teamRoom]
	for _, tc := range []struct {
		name string
		l    HistoryLimit
		want int
	}{
		{"room default", NoHistoryLimit, 25},
		{"maxstanzas", HistoryLimit{MaxChars: -1, MaxStanzas: 3}, 3},
		{"maxchars 0", HistoryLimit{MaxChars: 0, MaxStanzas: -1}, 0},
		{"maxchars two stanzas", HistoryLimit{MaxChars: 2*200 + 10, MaxStanzas: -1}, 2},
		{"seconds", HistoryLimit{MaxChars: -1, MaxStanzas: -1, Seconds: 5*60 + 30}, 6},
		{"since", HistoryLimit{MaxChars: -1, MaxStanzas: -1, Since: now.Add(27 * time.Minute)}, 3},
		{"since the future", HistoryLimit{MaxChars: -1, MaxStanzas: -1, Since: now.Add(time.Hour)}, 0},
		{"smallest wins", HistoryLimit{MaxChars: -1, MaxStanzas: 10, Seconds: 2*60 + 30}, 3},
	} {
		if got := len(r.historyFor(tc.l)); got != tc.want {
			t.Errorf("%s: %d messages, want %d", tc.name, got, tc.want)
		}
	}
}

// The rules of XEP-0045 on who may give whom which role.
func TestRoleRules(t *testing.T) {
	cfg := DefaultRoomConfig()
	cfg.Moderated = true
	for _, tc := range []struct {
		name     string
		actor    string // alice (owner), adam (admin), mia (member), or nora (no affiliation)
		target   string
		role     Role
		want     error
		prepRole map[string]Role
	}{
		{"owner kicks a participant", "alice", "mia", RoleNone, nil, nil},
		{"admin kicks the owner", "adam", "alice", RoleNone, ErrNotAllowed, nil},
		{"member moderator kicks an admin", "mia", "adam", RoleNone, ErrNotAllowed, map[string]Role{"mia": Moderator}},
		{"member moderator kicks a moderator", "mia", "nora", RoleNone, ErrNotAllowed, map[string]Role{"mia": Moderator, "nora": Moderator}},
		{"kick oneself", "alice", "alice", RoleNone, ErrConflict, nil},
		{"participant kicks", "mia", "nora", RoleNone, ErrForbidden, nil},
		{"voice to a visitor", "adam", "nora", Participant, nil, nil},
		{"revoke an admin's voice", "alice", "adam", Visitor, ErrNotAllowed, nil},
		{"revoke voice at one's own level", "mia", "mia2", Visitor, ErrNotAllowed, map[string]Role{"mia": Moderator}},
		{"member moderator revokes voice below", "mia", "nora", Visitor, nil, map[string]Role{"mia": Moderator, "nora": Participant}},
		{"admin grants moderator", "adam", "mia", Moderator, nil, nil},
		{"member moderator grants moderator", "mia", "nora", Moderator, ErrForbidden, map[string]Role{"mia": Moderator}},
		{"admin revokes an owner's moderator status", "adam", "alice", Participant, ErrNotAllowed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newRoomService(t, Config{}, cfg)
			err := s.SetAffiliations(ctx, teamRoom, user("alice"), []AffiliationChange{
				{JID: user("adam").Bare(), Affiliation: Admin},
				{JID: user("mia").Bare(), Affiliation: Member},
				{JID: user("mia2").Bare(), Affiliation: Member},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"adam", "mia", "mia2", "nora"} {
				enter(t, s, user(u), u)
			}
			r := s.rooms[teamRoom]
			for nick, role := range tc.prepRole {
				r.byNick[nickKey(nick)].role = role
			}
			err = s.SetRoles(ctx, teamRoom, user(tc.actor), []RoleChange{{Nick: tc.target, Role: tc.role}}, nil)
			if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
				t.Fatalf("%s gives %s role %s: %v, want %v", tc.actor, tc.target, tc.role, err, tc.want)
			}
		})
	}
}

func TestAffiliationRules(t *testing.T) {
	s, _ := newRoomService(t, Config{}, DefaultRoomConfig())
	set := func(actor string, c AffiliationChange) error {
		return s.SetAffiliations(ctx, teamRoom, user(actor), []AffiliationChange{c}, nil)
	}
	if err := set("alice", AffiliationChange{JID: user("adam").Bare(), Affiliation: Admin}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		actor string
		c     AffiliationChange
		want  error
	}{
		{"admin bans the owner", "adam", AffiliationChange{JID: user("alice").Bare(), Affiliation: Outcast}, ErrNotAllowed},
		{"admin makes an admin", "adam", AffiliationChange{JID: user("bob").Bare(), Affiliation: Admin}, ErrForbidden},
		{"admin bans itself", "adam", AffiliationChange{JID: user("adam").Bare(), Affiliation: Outcast}, ErrConflict},
		{"last owner steps down", "alice", AffiliationChange{JID: user("alice").Bare(), Affiliation: Admin}, ErrConflict},
		{"stranger adds a member", "bob", AffiliationChange{JID: user("carol").Bare(), Affiliation: Member}, ErrForbidden},
		{"admin adds a member", "adam", AffiliationChange{JID: user("carol").Bare(), Affiliation: Member, Nick: "Caro", SetNick: true}, nil},
		{"reserved nick taken", "adam", AffiliationChange{JID: user("dan").Bare(), Affiliation: Member, Nick: "caro", SetNick: true}, ErrConflict},
		{"domain ban", "adam", AffiliationChange{JID: jid.MustParse("spam.example.net"), Affiliation: Outcast}, nil},
	} {
		if err := set(tc.actor, tc.c); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The domain ban keeps out anyone of that domain; the reserved nick
	// keeps others off it.
	if err := s.Enter(ctx, Entry{Room: teamRoom, Nick: "x", From: jid.MustParse("eve@spam.example.net/r"), MUC: true}); !errors.Is(err, ErrForbidden) {
		t.Errorf("domain-banned user entering: %v", err)
	}
	if err := s.Enter(ctx, Entry{Room: teamRoom, Nick: "CARO", From: user("bob"), MUC: true}); !errors.Is(err, ErrConflict) {
		t.Errorf("someone else taking a reserved nick: %v", err)
	}
	enter(t, s, user("carol"), "Caro")
}

// Many sessions entering, speaking and leaving at once keep the room
// consistent (run with -race).
func TestConcurrentOccupants(t *testing.T) {
	st := memstore.New()
	n := 0
	var mu sync.Mutex
	newID := func() string { mu.Lock(); defer mu.Unlock(); n++; return fmt.Sprintf("%012d", n) }
	cfg := DefaultRoomConfig()
	cfg.Persistent = true
	s, _ := newRoomService(t, Config{Store: st, Archive: st, NewID: newID}, cfg)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := user(fmt.Sprintf("u%d", i))
			for j := 0; j < 20; j++ {
				if err := s.Enter(ctx, Entry{Room: teamRoom, Nick: fmt.Sprintf("u%d", i), From: u, MUC: true, History: NoHistoryLimit}); err != nil {
					t.Error(err)
					return
				}
				s.Speak(ctx, teamRoom, u, func(nick, id string) Said { return Said{Data: []byte(nick), Archived: []byte(nick), Body: "b " + nick} })
				if j%2 == 0 {
					s.Exit(ctx, teamRoom, u, nil)
				} else {
					s.Gone(ctx, u)
				}
			}
		}()
	}
	wg.Wait()
	r := s.rooms[teamRoom]
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.occ) != 1 || len(r.byFull) != 1 || len(r.byNick) != 1 {
		t.Errorf("after everyone left: %d occupants, %d sessions, %d nicks", len(r.occ), len(r.byFull), len(r.byNick))
	}
	msgs, _, err := st.QueryMessages(ctx, teamRoom.String(), storage.ArchiveQuery{Max: 1000})
	if err != nil || len(msgs) != 16*20 {
		t.Errorf("archive holds %d messages (%v), want %d", len(msgs), err, 16*20)
	}
}

// A temporary room goes with its last occupant, archive and all.
func TestTemporaryRoomGoes(t *testing.T) {
	st := memstore.New()
	s, _ := newRoomService(t, Config{Store: st, Archive: st, NewID: func() string { return "000000000001" }}, DefaultRoomConfig())
	s.Speak(ctx, teamRoom, user("alice"), func(nick, id string) Said { return Said{Data: []byte("d"), Archived: []byte("d"), Body: "b"} })
	s.Exit(ctx, teamRoom, user("alice"), nil)
	if s.Exists(ctx, teamRoom, user("alice")) {
		t.Fatal("temporary room outlived its last occupant")
	}
	if msgs, _, _ := st.QueryMessages(ctx, teamRoom.String(), storage.ArchiveQuery{}); len(msgs) != 0 {
		t.Errorf("the archive of a destroyed room kept %d messages", len(msgs))
	}
}

func BenchmarkSpeak100(b *testing.B) {
	w := newFakeWire()
	s := New(Config{}, nopWire{})
	_ = w
	s.Enter(ctx, Entry{Room: teamRoom, Nick: "alice", From: user("alice"), MUC: true})
	s.Configure(ctx, teamRoom, user("alice"), DefaultRoomConfig(), nil, nil, nil)
	for i := 0; i < 99; i++ {
		s.Enter(ctx, Entry{Room: teamRoom, Nick: fmt.Sprint("u", i), From: user(fmt.Sprint("u", i)), MUC: true})
	}
	data := make([]byte, 200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Speak(ctx, teamRoom, user("alice"), func(nick, id string) Said { return Said{Data: data, Archived: data, Body: "b"} })
	}
}

type nopWire struct{}

func (nopWire) Presence(jid.JID, *Presence)                      {}
func (nopWire) Message(jid.JID, *Message)                        {}
func (nopWire) Replay(m storage.ArchivedMessage) ([]byte, error) { return m.Data, nil }

// With Config.Append, a message reaches the room only once stored, and
// what is said meanwhile (even unarchived) keeps its place behind it.
func TestAppendKeepsOrder(t *testing.T) {
	st := memstore.New()
	type job struct {
		msgs []storage.ArchivedMessage
		done func(error)
	}
	var jobs []job
	var mu sync.Mutex
	appendFn := func(from jid.JID, msgs []storage.ArchivedMessage, done func(error)) bool {
		mu.Lock()
		jobs = append(jobs, job{msgs, done})
		mu.Unlock()
		return true
	}
	i := 0
	s, w := newRoomService(t, Config{Archive: st, NewID: func() string { i++; return fmt.Sprintf("%012d", i) }, Append: appendFn}, DefaultRoomConfig())
	enter(t, s, user("bob"), "bob")
	w.take(user("bob"))
	say := func(text string, archived bool) {
		s.Speak(ctx, teamRoom, user("alice"), func(nick, id string) Said {
			sd := Said{Data: []byte(text), Body: text}
			if archived {
				sd.Archived = []byte(text)
			}
			return sd
		})
	}
	say("one", true)
	say("typing", false)
	say("two", true)
	if got := w.take(user("bob")); len(got) != 0 {
		t.Fatalf("bob got %d messages before anything was stored", len(got))
	}
	if len(jobs) != 3 || len(jobs[1].msgs) != 0 {
		t.Fatalf("jobs: %d, want 3 with the chat state's empty", len(jobs))
	}
	for _, j := range jobs {
		j.done(nil)
	}
	var order []string
	for _, g := range w.take(user("bob")) {
		order = append(order, string(g.(Message).Data))
	}
	if fmt.Sprint(order) != "[one typing two]" {
		t.Errorf("delivered %v, want [one typing two]", order)
	}
	// Nothing in flight: a chat state goes at once.
	say("idle", false)
	if got := w.take(user("bob")); len(got) != 1 {
		t.Errorf("chat state with nothing in flight: %d deliveries", len(got))
	}
}
