package meeting

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCreateDefaultsAndValidation(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.Create(ctx, alice, Change{}); !errors.Is(err, ErrTitleRequired) {
		t.Errorf("no title: err = %v, want ErrTitleRequired", err)
	}
	if _, err := e.svc.Create(ctx, alice, Change{Title: ptr("   ")}); !errors.Is(err, ErrTitleRequired) {
		t.Errorf("blank title: err = %v, want ErrTitleRequired", err)
	}
	m := e.create(Change{})
	if !m.AttendeesCanStart || m.AllowGuests || m.Lobby || m.Recording || m.HasPassword ||
		m.Uploads != UploadsOrganizer || m.EndBehaviour != EndArchive || m.Schedule != nil {
		t.Errorf("defaults: %+v", m)
	}
	if m.Link != "/meetings/j/"+m.Token || m.Organizer != alice || m.Version != 1 {
		t.Errorf("link/organizer/version: %q %v %d", m.Link, m.Organizer, m.Version)
	}

	bad := []struct {
		sc   Schedule
		want error
		text string
	}{
		{Schedule{Start: epoch, End: epoch.Add(time.Hour), RRule: "FREQ=SOMETIMES"}, ErrBadRRule, "SOMETIMES"},
		{Schedule{Start: epoch, End: epoch.Add(time.Hour), RRule: "FREQ=WEEKLY;BYDAY=XX"}, ErrBadRRule, "BYDAY"},
		{Schedule{Start: epoch, End: epoch.Add(time.Hour), RRule: "FREQ=MINUTELY"}, ErrBadRRule, "FREQ must be"},
		{Schedule{Start: epoch, End: epoch.Add(time.Hour), RRule: "FREQ=WEEKLY;COUNT=999999"}, ErrBadRRule, "COUNT"},
		{Schedule{Start: epoch, End: epoch.Add(time.Hour), RRule: "DTSTART:20260101T000000Z;FREQ=DAILY"}, ErrBadRRule, "DTSTART"},
		{Schedule{Start: epoch, End: epoch.Add(time.Hour), RRule: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31"}, ErrBadRRule, "never matches"},
		{Schedule{Start: epoch, End: epoch.Add(-time.Hour)}, ErrBadSchedule, "after the start"},
		{Schedule{Start: epoch}, ErrBadSchedule, "required"},
		{Schedule{Start: epoch, End: epoch.Add(time.Hour), TimeZone: "Mars/Olympus"}, ErrBadSchedule, "time zone"},
		{Schedule{Start: epoch.Add(-48 * time.Hour), End: epoch.Add(-47 * time.Hour)}, ErrBadSchedule, "already ended"},
	}
	for _, b := range bad {
		_, err := e.svc.Create(ctx, alice, Change{Title: ptr("x"), Schedule: &b.sc})
		if !errors.Is(err, b.want) || !strings.Contains(err.Error(), b.text) {
			t.Errorf("schedule %+v: err = %v, want %v mentioning %q", b.sc, err, b.want, b.text)
		}
	}
	if _, err := e.svc.Create(ctx, alice, Change{Title: ptr("x"), Uploads: ptr(Uploads(9))}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad uploads: %v", err)
	}
}

func TestTokensAreUnguessable(t *testing.T) {
	e := newEnv(t)
	seen := map[string]bool{}
	for range 300 {
		m := e.create(Change{})
		raw, err := base64.RawURLEncoding.DecodeString(m.Token)
		if err != nil || len(raw)*8 < 128 {
			t.Fatalf("token %q: %d bits, %v", m.Token, len(raw)*8, err)
		}
		if seen[m.Token] {
			t.Fatalf("token %q repeated", m.Token)
		}
		seen[m.Token] = true
	}
	tk := e.join(e.create(Change{}), JoinRequest{User: alice})
	if raw, _ := base64.RawURLEncoding.DecodeString(tk.Credential); len(raw) < 32 {
		t.Errorf("credential has %d bytes", len(raw))
	}
	// A token is found only exactly.
	m := e.create(Change{})
	for _, tok := range []string{"", m.Token[:len(m.Token)-1], strings.ToUpper(m.Token), m.Token + "x"} {
		if _, err := e.svc.Join(ctx, tok, JoinRequest{User: bob}); !errors.Is(err, ErrNotFound) && tok != strings.ToUpper(m.Token) {
			t.Errorf("Join(%q): %v, want ErrNotFound", tok, err)
		}
	}
}

func TestPasswordHashedAndChecked(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{Password: ptr("s3cret"), AllowGuests: ptr(true)})
	if !m.HasPassword {
		t.Fatal("HasPassword false")
	}
	st, _ := e.store.Meeting(ctx, m.ID)
	if strings.Contains(st.PasswordHash, "s3cret") || !strings.HasPrefix(st.PasswordHash, "$argon2id$") {
		t.Fatalf("stored password: %q", st.PasswordHash)
	}
	if _, err := e.svc.Join(ctx, m.Token, JoinRequest{Name: "G", Password: "wrong", ClientAddr: "1.1.1.1"}); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := e.svc.Join(ctx, m.Token, JoinRequest{Name: "G", ClientAddr: "1.1.1.1"}); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("no password: %v", err)
	}
	e.join(m, JoinRequest{Name: "G", Password: "s3cret", ClientAddr: "1.1.1.1"})
	// The organizer needs none.
	e.join(m, JoinRequest{User: alice})
	// Removing the password opens the meeting.
	if _, err := e.svc.Update(ctx, alice, m.ID, Change{Password: ptr("")}); err != nil {
		t.Fatal(err)
	}
	e.join(m, JoinRequest{Name: "G2"})
}

func TestWrongPasswordsThrottled(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PasswordFailuresPerAddr = 3
		c.PasswordFailures = 5
		c.PasswordWindow = 10 * time.Minute
	})
	m := e.create(Change{Password: ptr("right"), AllowGuests: ptr(true)})
	try := func(addr, pw string) error {
		_, err := e.svc.Join(ctx, m.Token, JoinRequest{Name: "G", Password: pw, ClientAddr: addr})
		return err
	}
	for i := range 3 {
		if err := try("10.0.0.1", "guess"); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// The address is now throttled, even with the right password.
	err := try("10.0.0.1", "right")
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("4th attempt: %v, want ErrThrottled", err)
	}
	var te *throttledError
	if !errors.As(err, &te) || te.after <= 0 || te.after > 10*time.Minute {
		t.Errorf("retry after: %v", err)
	}
	// Another address still may, until the meeting's own limit.
	if err := try("10.0.0.2", "right"); err != nil {
		t.Fatalf("other address: %v", err)
	}
	try("10.0.0.2", "guess")
	try("10.0.0.3", "guess") // 5 failures on the meeting now
	if err := try("10.0.0.4", "right"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("meeting limit: %v, want ErrThrottled", err)
	}
	// Another meeting is not affected by this meeting's limit.
	m2 := e.create(Change{Password: ptr("right"), AllowGuests: ptr(true)})
	if _, err := e.svc.Join(ctx, m2.Token, JoinRequest{Name: "G", Password: "right", ClientAddr: "10.0.0.4"}); err != nil {
		t.Fatalf("other meeting: %v", err)
	}
	e.clock.Advance(11 * time.Minute)
	if err := try("10.0.0.1", "right"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestJoinRoles(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{})
	if tk := e.join(m, JoinRequest{User: alice}); tk.Participant.Role != RoleOrganizer || tk.Participant.Name != "alice" {
		t.Errorf("organizer: %+v", tk.Participant)
	}
	if tk := e.join(m, JoinRequest{User: bob, Name: "Bob B."}); tk.Participant.Role != RoleAttendee || tk.Participant.Name != "Bob B." || tk.GuestID != "" {
		t.Errorf("attendee: %+v", tk.Participant)
	}
	if _, err := e.svc.Join(ctx, m.Token, JoinRequest{Name: "Guest"}); !errors.Is(err, ErrLoginRequired) {
		t.Errorf("guest when guests are not allowed: %v", err)
	}
	e.svc.Update(ctx, alice, m.ID, Change{AllowGuests: ptr(true)})
	if _, err := e.svc.Join(ctx, m.Token, JoinRequest{Name: "  "}); !errors.Is(err, ErrNameRequired) {
		t.Errorf("guest without a name: %v", err)
	}
	tk := e.join(m, JoinRequest{Name: "Guest"})
	if tk.Participant.Role != RoleGuest || !tk.Participant.Guest() || tk.GuestID == "" {
		t.Errorf("guest: %+v", tk)
	}
	if _, err := e.svc.Update(ctx, bob, m.ID, Change{Lobby: ptr(true)}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("attendee changing settings: %v", err)
	}
	if err := e.svc.Delete(ctx, bob, m.ID); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("attendee deleting: %v", err)
	}
}

func TestAttendeesWaitForOrganizer(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{AttendeesCanStart: ptr(false), AllowGuests: ptr(true)})
	bobC := e.connect(e.join(m, JoinRequest{User: bob}))
	if w := bobC.next(EventWelcome); w.Participant.State != Waiting {
		t.Fatalf("bob: %v, want waiting", w.Participant.State)
	}
	if _, err := e.svc.Authorize(ctx, bobC.cred); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("Authorize of a waiting attendee: %v", err)
	}
	if _, err := e.svc.Chat(ctx, bobC.cred, "hi"); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("Chat while waiting: %v", err)
	}
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	if w := org.next(EventWelcome); w.Participant.State != In {
		t.Fatalf("organizer: %v", w.Participant.State)
	}
	if w := bobC.next(EventWelcome); w.Participant.State != In {
		t.Fatalf("bob after the organizer came: %v", w.Participant.State)
	}
	p, err := e.svc.Authorize(ctx, bobC.cred)
	if err != nil || p.Role != RoleAttendee || p.State != In {
		t.Errorf("Authorize: %+v, %v", p, err)
	}
	// Settings changed mid-meeting: attendees may start it now, so a guest
	// arriving after everyone left goes straight in.
	e.svc.disconnect(org.c)
	e.svc.disconnect(bobC.c)
	g := e.connect(e.join(m, JoinRequest{Name: "G"}))
	if w := g.next(EventWelcome); w.Participant.State != Waiting {
		t.Fatalf("guest in an emptied meeting: %v, want waiting", w.Participant.State)
	}
	e.svc.Update(ctx, alice, m.ID, Change{AttendeesCanStart: ptr(true)})
	if w := g.next(EventWelcome); w.Participant.State != In {
		t.Fatalf("guest after AttendeesCanStart: %v", w.Participant.State)
	}
}

func TestLobbyAdmitDeny(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{Lobby: ptr(true), AllowGuests: ptr(true)})
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	org.next(EventWelcome)
	g1 := e.connect(e.join(m, JoinRequest{Name: "Gina"}))
	if w := g1.next(EventWelcome); w.Participant.State != Lobby {
		t.Fatalf("guest: %v, want lobby", w.Participant.State)
	}
	lob := org.next(EventLobby)
	if len(lob.Lobby) != 1 || lob.Lobby[0].Name != "Gina" {
		t.Fatalf("lobby: %+v", lob.Lobby)
	}
	g2 := e.connect(e.join(m, JoinRequest{Name: "Gus"}))
	g2.next(EventWelcome)
	bobTk := e.join(m, JoinRequest{User: bob})
	bobC := e.connect(bobTk)
	bobC.next(EventWelcome)

	// Lobby waiters see nothing of the meeting.
	if _, err := e.svc.Chat(ctx, org.cred, "private"); err != nil {
		t.Fatal(err)
	}
	g1.none(EventChat)

	// Only moderators admit.
	id1 := lob.Lobby[0].ID
	if err := e.svc.Admit(ctx, g2.cred, id1); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("a waiter admitting: %v", err)
	}
	if err := e.svc.Admit(ctx, org.cred, id1); err != nil {
		t.Fatal(err)
	}
	if w := g1.next(EventWelcome); w.Participant.State != In || len(w.Participants) < 2 {
		t.Fatalf("admitted: %+v", w)
	}
	if j := org.next(EventJoined); j.Participant.ID != id1 {
		t.Errorf("joined: %+v", j.Participant)
	}
	// An admitted guest (not a moderator) cannot admit others.
	bobID := bobTk.Participant.ID
	if err := e.svc.Admit(ctx, g1.cred, bobID); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("guest admitting: %v", err)
	}
	if err := e.svc.Deny(ctx, org.cred, bobID); err != nil {
		t.Fatal(err)
	}
	if st := bobC.next(EventState); st.Participant.State != Denied {
		t.Errorf("bob's state: %+v", st.Participant)
	}
	if _, err := e.svc.Authorize(ctx, bobC.cred); !errors.Is(err, ErrBadCredential) {
		t.Errorf("denied credential: %v", err)
	}
	// Turning the lobby off mid-meeting admits who still waits.
	if _, err := e.svc.Update(ctx, alice, m.ID, Change{Lobby: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	for {
		w := g2.next(EventWelcome)
		if w.Participant.State == In {
			break
		}
	}
	// A reconnect within the grace keeps an admitted guest in, even with
	// the lobby back on.
	e.svc.Update(ctx, alice, m.ID, Change{Lobby: ptr(true)})
	e.svc.disconnect(g1.c)
	g1again := e.connect(Ticket{Credential: g1.cred})
	if w := g1again.next(EventWelcome); w.Participant.State != In {
		t.Errorf("reconnected admitted guest: %v", w.Participant.State)
	}
	// After the grace, the credential is gone.
	e.svc.disconnect(g1again.c)
	e.clock.Advance(3 * time.Minute)
	if _, err := e.svc.connect(g1.cred); !errors.Is(err, ErrBadCredential) {
		t.Errorf("expired credential: %v", err)
	}
}

func TestModeratorsMuteRemove(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{AllowGuests: ptr(true)})
	room, err := e.svc.Room(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := room.Subscribe(64)
	defer cancel()
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	bobTk := e.join(m, JoinRequest{User: bob})
	bobC := e.connect(bobTk)
	gTk := e.join(m, JoinRequest{Name: "Gail"})
	g := e.connect(gTk)
	carolC := e.connect(e.join(m, JoinRequest{User: carol}))
	org.next(EventWelcome)
	if n := len(room.Participants()); n != 4 {
		t.Fatalf("%d participants", n)
	}
	bobID, gID, carolID := bobTk.Participant.ID, gTk.Participant.ID, carolC.next(EventWelcome).Participant.ID

	// An attendee may not moderate.
	for _, err := range []error{
		e.svc.Mute(ctx, bobC.cred, gID),
		e.svc.Remove(ctx, bobC.cred, gID),
		e.svc.SetModerator(ctx, bobC.cred, gID, true),
		e.svc.ClearChat(ctx, Access{Credential: bobC.cred}, m.ID),
	} {
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("attendee moderating: %v", err)
		}
	}
	// The organizer makes bob a moderator, who makes the guest one.
	if err := e.svc.SetModerator(ctx, org.cred, bobID, true); err != nil {
		t.Fatal(err)
	}
	if u := bobC.next(EventUpdated); u.Participant.Role != RoleModerator {
		t.Fatalf("bob: %+v", u.Participant)
	}
	if err := e.svc.SetModerator(ctx, bobC.cred, gID, true); err != nil {
		t.Fatalf("moderator granting: %v", err)
	}
	g.next(EventUpdated)
	// A moderator mutes and removes; not the organizer.
	if err := e.svc.Mute(ctx, bobC.cred, carolID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Mute(ctx, bobC.cred, org.c.p.ID); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("moderator muting the organizer: %v", err)
	}
	if err := e.svc.Remove(ctx, bobC.cred, org.c.p.ID); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("moderator removing the organizer: %v", err)
	}
	if err := e.svc.SetModerator(ctx, bobC.cred, org.c.p.ID, false); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("demoting the organizer: %v", err)
	}
	// Only carol unmutes herself.
	if err := e.svc.Unmute(ctx, carolC.cred); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Remove(ctx, g.cred, carolID); err != nil {
		t.Fatalf("guest moderator removing: %v", err)
	}
	if st := carolC.next(EventState); st.Participant.State != Removed {
		t.Errorf("carol: %+v", st.Participant)
	}
	if _, err := e.svc.Join(ctx, m.Token, JoinRequest{User: carol}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("removed user rejoining: %v", err)
	}
	// The media layer saw it all.
	var seen []string
	timeout := time.After(2 * time.Second)
collect:
	for {
		select {
		case ev := <-events:
			switch ev.Type {
			case EventMuted:
				seen = append(seen, fmt.Sprintf("muted:%s:%v", ev.Participant.Name, ev.Participant.Muted))
			case EventRemoved:
				seen = append(seen, "removed:"+ev.Participant.Name)
			case EventUpdated:
				seen = append(seen, fmt.Sprintf("role:%s:%v", ev.Participant.Name, ev.Participant.Role))
			}
			if len(seen) == 5 {
				break collect
			}
		case <-timeout:
			break collect
		}
	}
	want := "role:bob:moderator role:Gail:moderator muted:carol:true muted:carol:false removed:carol"
	if strings.Join(seen, " ") != want {
		t.Errorf("media events:\n got %s\nwant %s", strings.Join(seen, " "), want)
	}
	if n := len(room.Participants()); n != 3 {
		t.Errorf("%d participants after the removal", n)
	}
	// Rights are kept with the meeting: the guest (same guest id) and bob
	// are moderators when they come back.
	e.svc.disconnect(bobC.c)
	if tk := e.join(m, JoinRequest{User: bob}); tk.Participant.Role != RoleModerator {
		t.Errorf("bob rejoining: %v", tk.Participant.Role)
	}
	if tk := e.join(m, JoinRequest{Name: "Gail", GuestID: gTk.GuestID}); tk.Participant.Role != RoleModerator {
		t.Errorf("guest rejoining: %v", tk.Participant.Role)
	}
	if tk := e.join(m, JoinRequest{Name: "Gail"}); tk.Participant.Role != RoleGuest {
		t.Errorf("another guest: %v", tk.Participant.Role)
	}
}

func TestDisallowingGuestsRemovesThem(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{AllowGuests: ptr(true)})
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	g := e.connect(e.join(m, JoinRequest{Name: "G"}))
	g.next(EventWelcome)
	e.svc.Update(ctx, alice, m.ID, Change{AllowGuests: ptr(false)})
	if st := g.next(EventState); st.Participant.State != Removed || !strings.Contains(st.Reason, "guests") {
		t.Errorf("guest: %+v", st)
	}
	if l := org.next(EventLeft); l.Participant.Name != "G" {
		t.Errorf("left: %+v", l)
	}
	select {
	case <-g.c.done:
	case <-time.After(time.Second):
		t.Error("guest connection not closed")
	}
}

func TestUploadPermissions(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{AllowGuests: ptr(true)})
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	bobC := e.connect(e.join(m, JoinRequest{User: bob}))
	g := e.connect(e.join(m, JoinRequest{Name: "G"}))
	up := func(c *client, name, body string) error {
		e.clock.Advance(time.Second) // files list in upload order
		_, err := e.svc.Upload(ctx, c.cred, name, "text/plain", strings.NewReader(body))
		return err
	}
	if err := up(org, "agenda.txt", "hello"); err != nil {
		t.Fatalf("organizer: %v", err)
	}
	if err := up(bobC, "b.txt", "x"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("attendee under organizer-only: %v", err)
	}
	if err := up(g, "g.txt", "x"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("guest under organizer-only: %v", err)
	}
	e.svc.Update(ctx, alice, m.ID, Change{Uploads: ptr(UploadsAuthenticated)})
	if err := up(bobC, "b.txt", "bob!"); err != nil {
		t.Errorf("attendee under authenticated: %v", err)
	}
	if err := up(g, "g.txt", "x"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("guest under authenticated: %v", err)
	}
	e.svc.Update(ctx, alice, m.ID, Change{Uploads: ptr(UploadsAnyone)})
	if err := up(g, "../../etc/g.txt", "guest"); err != nil {
		t.Errorf("guest under anyone: %v", err)
	}
	if err := up(g, "setup.EXE", "MZ"); !errors.Is(err, ErrFileBlocked) || !strings.Contains(err.Error(), ".exe extension") {
		t.Errorf("blacklisted: %v", err)
	}
	if err := up(g, "big.bin", strings.Repeat("x", 1<<20+1)); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if e.files.Len() != 3 {
		t.Errorf("file store holds %d files, want 3 (refused ones leave nothing)", e.files.Len())
	}
	fs, err := e.svc.Files(ctx, Access{Credential: bobC.cred}, m.ID)
	if err != nil || len(fs) != 3 || fs[2].Name != "g.txt" || fs[2].UploaderName != "G" {
		t.Fatalf("files: %+v, %v", fs, err)
	}
	u, _ := e.svc.Usage(ctx, Access{User: alice}, m.ID)
	if u.Files != 3 || u.Bytes != 5+4+5 {
		t.Errorf("usage: %+v", u)
	}
	f, rc, err := e.svc.OpenFile(ctx, Access{Credential: g.cred}, m.ID, fs[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "bob!" || f.Name != "b.txt" {
		t.Errorf("download: %q %+v", b, f)
	}
	// The guest may delete its own file, not bob's.
	if err := e.svc.DeleteFile(ctx, Access{Credential: g.cred}, m.ID, fs[1].ID); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("deleting another's file: %v", err)
	}
	if err := e.svc.DeleteFile(ctx, Access{Credential: g.cred}, m.ID, fs[2].ID); err != nil {
		t.Errorf("deleting own file: %v", err)
	}
	if ev := bobC.next(EventFileDeleted); ev.File.Name != "g.txt" {
		t.Errorf("file.deleted: %+v", ev.File)
	}
	// A stranger sees nothing.
	if _, err := e.svc.Files(ctx, Access{User: carol}, m.ID); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("stranger listing files: %v", err)
	}
	// Deleting the meeting deletes the bytes.
	if err := e.svc.Delete(ctx, alice, m.ID); err != nil {
		t.Fatal(err)
	}
	if e.files.Len() != 0 {
		t.Errorf("%d files left after deleting the meeting", e.files.Len())
	}
	if ev := org.next(EventEnded); ev.Reason == "" {
		t.Error("no reason for the end")
	}
}

func TestChatStoredViewableAfterAndCleared(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{AllowGuests: ptr(true)})
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	bobC := e.connect(e.join(m, JoinRequest{User: bob}))
	g := e.connect(e.join(m, JoinRequest{Name: "Gwen"}))
	for i, c := range []*client{org, bobC, g} {
		if _, err := e.svc.Chat(ctx, c.cred, fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*client{org, bobC, g} {
		for i := range 3 {
			if msg := c.next(EventChat).Message; msg.Seq != uint64(i+1) || msg.Body != fmt.Sprintf("hello %d", i) {
				t.Errorf("message %d: %+v", i, msg)
			}
		}
	}
	if _, err := e.svc.Chat(ctx, g.cred, "   "); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty message: %v", err)
	}
	if _, err := e.svc.Chat(ctx, g.cred, strings.Repeat("é", 4001)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("long message: %v", err)
	}
	// After the meeting: everyone leaves, credentials expire.
	for _, c := range []*client{org, bobC, g} {
		e.svc.disconnect(c.c)
	}
	e.clock.Advance(time.Hour)
	msgs, err := e.svc.History(ctx, Access{User: bob}, m.ID, 0, 0)
	if err != nil || len(msgs) != 3 || msgs[2].Name != "Gwen" {
		t.Fatalf("bob's history after the meeting: %+v, %v", msgs, err)
	}
	ps, err := e.svc.Participated(ctx, bob)
	if err != nil || len(ps) != 1 || ps[0].Meeting.ID != m.ID || ps[0].First.IsZero() {
		t.Errorf("bob's participated meetings: %+v, %v", ps, err)
	}
	if ps, _ := e.svc.Participated(ctx, alice); len(ps) != 0 {
		t.Errorf("the organizer's own meeting is not 'participated': %+v", ps)
	}
	if _, err := e.svc.History(ctx, Access{User: carol}, m.ID, 0, 0); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("stranger reading history: %v", err)
	}
	if err := e.svc.ClearChat(ctx, Access{User: bob}, m.ID); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("attendee clearing the chat: %v", err)
	}
	if err := e.svc.ClearChat(ctx, Access{User: alice}, m.ID); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := e.svc.History(ctx, Access{User: alice}, m.ID, 0, 0); len(msgs) != 0 {
		t.Errorf("%d messages after clearing", len(msgs))
	}
	// A moderator in the meeting clears it too, and everyone is told.
	org = e.connect(e.join(m, JoinRequest{User: alice}))
	bobTk := e.join(m, JoinRequest{User: bob})
	bobC = e.connect(bobTk)
	e.svc.SetModerator(ctx, org.cred, bobTk.Participant.ID, true)
	e.svc.Chat(ctx, bobC.cred, "again")
	if err := e.svc.ClearChat(ctx, Access{Credential: bobC.cred}, m.ID); err != nil {
		t.Fatalf("moderator clearing: %v", err)
	}
	org.next(EventChatCleared)
}

func TestSlowConnectionDroppedRoomNotBlocked(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.QueueLength = 8 })
	m := e.create(Change{AllowGuests: ptr(true)})
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	slow := e.connect(e.join(m, JoinRequest{Name: "Slow"})) // never reads
	room, _ := e.svc.Room(ctx, m.ID)
	media, cancel := room.Subscribe(4) // never reads either
	defer cancel()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			if _, err := e.svc.Chat(ctx, org.cred, fmt.Sprint(i)); err != nil {
				t.Error(err)
				return
			}
			// The organizer reads its own events.
			for {
				if ev := <-org.c.ch; ev.Type == EventChat {
					break
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a slow participant blocked the room")
	}
	select {
	case <-slow.c.done:
		if !strings.Contains(slow.c.reason, "slow") {
			t.Errorf("reason %q", slow.c.reason)
		}
	default:
		t.Error("slow connection was not dropped")
	}
	n := 0
	for range media {
		n++
	}
	if n > 4 {
		t.Errorf("media subscription got %d events past its buffer of 4", n)
	}
	// The dropped participant may reconnect with its credential.
	again := e.connect(Ticket{Credential: slow.cred})
	if w := again.next(EventWelcome); w.Participant.State != In {
		t.Errorf("reconnected: %+v", w.Participant)
	}
}

func TestPrefs(t *testing.T) {
	e := newEnv(t)
	p, err := e.svc.Prefs(ctx, bob)
	if err != nil || p.WebcamQuality != "low" {
		t.Fatalf("default prefs: %+v, %v", p, err)
	}
	if err := e.svc.SetPrefs(ctx, bob, DevicePrefs{Microphone: "usb-mic", WebcamQuality: "ultra"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad quality: %v", err)
	}
	want := DevicePrefs{Microphone: "usb-mic", Camera: "cam", WebcamQuality: "high", Speakers: "hdmi"}
	if err := e.svc.SetPrefs(ctx, bob, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Prefs(ctx, bob); got != want {
		t.Errorf("prefs: %+v", got)
	}
}

func TestTwoServicesIndependent(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	m := a.create(Change{})
	if _, err := b.svc.Join(ctx, m.Token, JoinRequest{User: bob}); !errors.Is(err, ErrNotFound) {
		t.Errorf("meeting of one service found in the other: %v", err)
	}
}

// TestAddFile: a file the host adds (a recording) is listed and readable
// like an upload, announced with file.added, bounded by its own limit, and
// subject to the host's file name policy.
func TestAddFile(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{})
	org := e.connect(e.join(m, JoinRequest{User: alice}))
	body := strings.Repeat("webm", 300000) // beyond MaxFileSize: its own limit applies
	f, err := e.svc.AddFile(ctx, m.ID, NewFile{Name: "Recording 1.webm", ContentType: "video/webm",
		Uploader: "parley:recording", UploaderName: "Recording", MaxSize: 2 << 20}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(body)) || f.Name != "Recording 1.webm" || f.UploaderName != "Recording" || !f.Stamp.Equal(epoch) {
		t.Errorf("file: %+v", f)
	}
	if ev := org.next(EventFileAdded); ev.File.ID != f.ID || ev.File.Name != f.Name {
		t.Errorf("file.added: %+v", ev.File)
	}
	fs, err := e.svc.Files(ctx, Access{Credential: org.cred}, m.ID)
	if err != nil || len(fs) != 1 || fs[0].ID != f.ID || fs[0].ContentType != "video/webm" {
		t.Fatalf("files: %+v, %v", fs, err)
	}
	_, rc, err := e.svc.OpenFile(ctx, Access{User: alice}, m.ID, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != body {
		t.Errorf("read back %d bytes, want %d", len(got), len(body))
	}
	// Without its own limit, the upload limit applies.
	if _, err := e.svc.AddFile(ctx, m.ID, NewFile{Name: "big.webm"}, strings.NewReader(body)); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if _, err := e.svc.AddFile(ctx, m.ID, NewFile{Name: "x.exe"}, strings.NewReader("MZ")); !errors.Is(err, ErrFileBlocked) {
		t.Errorf("blocked name: %v", err)
	}
	if _, err := e.svc.AddFile(ctx, m.ID, NewFile{Name: " "}, strings.NewReader("x")); !errors.Is(err, ErrBadRequest) {
		t.Errorf("no name: %v", err)
	}
	if _, err := e.svc.AddFile(ctx, "no-such-meeting", NewFile{Name: "a.webm"}, strings.NewReader("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown meeting: %v", err)
	}
	if e.files.Len() != 1 {
		t.Errorf("file store holds %d files, want 1 (refused ones leave nothing)", e.files.Len())
	}
}
