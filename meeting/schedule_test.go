package meeting

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/jid"
)

func TestScheduleEndsAndNext(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tz data:", err)
	}
	// Mondays 10:00-11:00 Paris time, 4 times, across the EU change to
	// summer time on 29 March 2026.
	start := time.Date(2026, 3, 16, 10, 0, 0, 0, paris)
	sc := Schedule{Start: start, End: start.Add(time.Hour), TimeZone: "Europe/Paris", RRule: "FREQ=WEEKLY;BYDAY=MO;COUNT=4"}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	end, ok := sc.Ends()
	want := time.Date(2026, 4, 6, 11, 0, 0, 0, paris)
	if !ok || !end.Equal(want) {
		t.Errorf("Ends = %v, %v; want %v", end, ok, want)
	}
	// Wall clock stays 10:00 after the change (08:00 UTC, not 09:00).
	s, e, ok := sc.Next(time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC))
	if !ok || s.In(paris).Hour() != 10 || s.UTC().Hour() != 8 || e.Sub(s) != time.Hour {
		t.Errorf("Next after DST: %v-%v %v", s, e, ok)
	}
	// An occurrence in progress is the next one.
	if s, _, _ := sc.Next(start.Add(30 * time.Minute)); !s.Equal(start) {
		t.Errorf("Next during the first occurrence = %v", s)
	}
	if _, _, ok := sc.Next(want); ok {
		t.Error("Next after the end found one")
	}
	forever := Schedule{Start: start, End: start.Add(time.Hour), RRule: "FREQ=DAILY"}
	if _, ok := forever.Ends(); ok {
		t.Error("a rule without COUNT or UNTIL ends")
	}
	if s, _, ok := forever.Next(start.AddDate(5, 0, 0)); !ok || s.Before(start.AddDate(5, 0, 0)) {
		t.Errorf("Next in 5 years: %v %v", s, ok)
	}
	until := Schedule{Start: start, End: start.Add(time.Hour), TimeZone: "Europe/Paris", RRule: "RRULE:FREQ=DAILY;UNTIL=20260318T235959Z"}
	if end, ok := until.Ends(); !ok || !end.Equal(time.Date(2026, 3, 18, 11, 0, 0, 0, paris)) {
		t.Errorf("UNTIL end = %v %v", end, ok)
	}
	oneOff := Schedule{Start: start, End: start.Add(2 * time.Hour)}
	if end, ok := oneOff.Ends(); !ok || !end.Equal(start.Add(2*time.Hour)) {
		t.Errorf("one-off end = %v", end)
	}
}

// Each end behaviour, as the clock passes the end of the schedule.
func TestEndBehavioursAcrossTime(t *testing.T) {
	e := newEnv(t)
	sc := &Schedule{Start: epoch.Add(time.Hour), End: epoch.Add(2 * time.Hour), RRule: "FREQ=DAILY;COUNT=3"}
	mk := func(end EndBehaviour) Meeting {
		return e.create(Change{Title: ptr(end.String()), Schedule: sc, EndBehaviour: &end, AllowGuests: ptr(true)})
	}
	archive, del, keep := mk(EndArchive), mk(EndDelete), mk(EndKeepActive)
	org := e.connect(e.join(archive, JoinRequest{User: alice}))
	e.svc.Chat(ctx, org.cred, "minutes")

	// During the schedule everything works.
	e.clock.Set(epoch.Add(49 * time.Hour)) // third occurrence: day 3, 10:00-11:00
	for _, m := range []Meeting{archive, del, keep} {
		e.join(m, JoinRequest{Name: "G"})
	}
	got, _ := e.svc.Meeting(ctx, archive.ID)
	if got.Archived {
		t.Fatal("archived before its end")
	}

	e.clock.Set(epoch.Add(50 * time.Hour)) // the end of the last occurrence
	if _, err := e.svc.Join(ctx, archive.Token, JoinRequest{Name: "G"}); !errors.Is(err, ErrArchived) {
		t.Errorf("joining an archived meeting: %v", err)
	}
	if ev := org.next(EventEnded); !strings.Contains(ev.Reason, "archived") {
		t.Errorf("the room was not ended: %+v", ev)
	}
	got, err := e.svc.Meeting(ctx, archive.ID)
	if err != nil || !got.Archived {
		t.Errorf("archived meeting: %+v, %v", got, err)
	}
	if _, err := e.svc.Update(ctx, alice, archive.ID, Change{Lobby: ptr(true)}); !errors.Is(err, ErrArchived) {
		t.Errorf("changing an archived meeting: %v", err)
	}
	// Still listed, chat still readable.
	// Both were created at the same (fake) instant, so their order is a
	// tie: check what is listed, not in which order.
	mine, _ := e.svc.Mine(ctx, alice)
	listed := map[string]bool{}
	for _, m := range mine {
		listed[m.ID] = m.ID != archive.ID || m.Archived
	}
	if len(mine) != 2 || !listed[archive.ID] || !listed[keep.ID] {
		t.Errorf("my meetings after the end: %+v", mine)
	}
	if msgs, err := e.svc.History(ctx, Access{User: alice}, archive.ID, 0, 0); err != nil || len(msgs) != 1 {
		t.Errorf("archived chat: %v %v", msgs, err)
	}
	if _, err := e.svc.Join(ctx, del.Token, JoinRequest{Name: "G"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("joining a deleted meeting: %v", err)
	}
	if _, err := e.store.Meeting(ctx, del.ID); err == nil {
		t.Error("the EndDelete meeting is still stored")
	}
	e.join(keep, JoinRequest{Name: "G"})
}

type fakeCalendar struct {
	mu     sync.Mutex
	exists map[string]bool
	fail   map[string]bool
	asked  []string
}

func (c *fakeCalendar) AppointmentExists(ctx context.Context, organizer jid.JID, id string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, organizer.Address()+"/"+id)
	if c.fail[id] {
		return false, errors.New("calendar down")
	}
	return c.exists[id], nil
}

func TestCalendarMeetingsAndSweep(t *testing.T) {
	cal := &fakeCalendar{exists: map[string]bool{"a1": true, "a2": true, "a3": true}, fail: map[string]bool{}}
	paris, _ := time.LoadLocation("Europe/Paris")
	e := newEnv(t, func(c *Config) {
		c.Appointments = cal
		c.Location = paris
		c.SweepAt = 2*time.Hour + 30*time.Minute
		c.LinkBase = "https://mail.example.com/parley/meetings/j/"
	})
	appt := Appointment{ID: "a1", Subject: "Quarterly review", Start: epoch.Add(24 * time.Hour), End: epoch.Add(25 * time.Hour), RRule: "FREQ=MONTHLY;COUNT=4", TimeZone: "Europe/Paris"}
	m, link, inv, err := e.svc.CreateForAppointment(ctx, alice, appt)
	if err != nil {
		t.Fatal(err)
	}
	if m.Title != "Quarterly review" || !m.AllowGuests || m.HasPassword || m.Uploads != UploadsOrganizer ||
		m.AppointmentID != "a1" || m.Schedule == nil || m.Schedule.RRule != "FREQ=MONTHLY;COUNT=4" {
		t.Errorf("appointment meeting: %+v", m)
	}
	if !strings.HasPrefix(link, "https://mail.example.com/parley/meetings/j/") || !strings.Contains(inv, link) || !strings.Contains(inv, "Quarterly review") {
		t.Errorf("link %q, invitation %q", link, inv)
	}
	// Again for the same appointment (edited): the same meeting, updated.
	appt.Subject = "Quarterly review (moved)"
	m2, link2, _, err := e.svc.CreateForAppointment(ctx, alice, appt)
	if err != nil || m2.ID != m.ID || link2 != link || m2.Title != appt.Subject {
		t.Errorf("second call: %+v %q %v", m2, link2, err)
	}
	if _, _, _, err := e.svc.CreateForAppointment(ctx, alice, Appointment{ID: "a9", Subject: "x", Start: epoch.Add(time.Hour), End: epoch, RRule: "FREQ=WEEKLY"}); !errors.Is(err, ErrBadSchedule) {
		t.Errorf("bad appointment times: %v", err)
	}
	mB, _, _, _ := e.svc.CreateForAppointment(ctx, alice, Appointment{ID: "a2", Subject: "B"})
	mC, _, _, _ := e.svc.CreateForAppointment(ctx, bob, Appointment{ID: "a3", Subject: "C"})
	plain := e.create(Change{})
	// A meeting whose schedule ends before the sweep, archived by it.
	ending := e.create(Change{Schedule: &Schedule{Start: epoch.Add(time.Hour), End: epoch.Add(2 * time.Hour)}})

	// Appointment a2 is cancelled, a3's calendar is down; the meetings stay
	// until the nightly sweep.
	cal.mu.Lock()
	cal.exists["a2"] = false
	cal.fail["a3"] = true
	cal.mu.Unlock()
	if _, err := e.svc.Meeting(ctx, mB.ID); err != nil {
		t.Fatalf("cancelled appointment's meeting deleted before the sweep: %v", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	swept := make(chan error, 1)
	go func() { swept <- e.svc.RunSweeper(ctx) }()
	<-e.clock.waiting // the sweeper sleeps until 02:30 Paris time
	// 09:00 UTC = 10:00 Paris; the next 02:30 Paris is 01:30 UTC tomorrow.
	e.clock.Set(time.Date(2026, 3, 3, 1, 29, 0, 0, time.UTC))
	if _, err := e.store.Meeting(ctx, mB.ID); err != nil {
		t.Fatal("swept too early")
	}
	e.clock.Set(time.Date(2026, 3, 3, 1, 30, 0, 0, time.UTC))
	<-e.clock.waiting // the sweep ran and the sweeper sleeps again
	if _, err := e.store.Meeting(ctx, mB.ID); err == nil {
		t.Error("the meeting of a cancelled appointment survived the sweep")
	}
	for _, id := range []string{m.ID, mC.ID, plain.ID} {
		if _, err := e.store.Meeting(ctx, id); err != nil {
			t.Errorf("meeting %s removed: %v", id, err)
		}
	}
	if st, _ := e.store.Meeting(ctx, ending.ID); !st.Archived {
		t.Error("the sweep did not archive an ended schedule")
	}
	cancel()
	if err := <-swept; !errors.Is(err, context.Canceled) {
		t.Errorf("RunSweeper returned %v", err)
	}

	// The sweep's figures.
	cal.mu.Lock()
	cal.exists["a1"] = false
	cal.mu.Unlock()
	res, err := e.svc.Sweep(context.Background())
	if err != nil || res.Deleted != 1 || res.Errors != 1 || res.Checked != 4 {
		t.Errorf("Sweep = %+v, %v", res, err)
	}
}

func TestNextSweepAcrossDST(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	e := newEnv(t, func(c *Config) { c.Location = paris })
	// The night of the change to summer time: 03:00 Paris is 01:00 UTC.
	got := e.svc.nextSweep(time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 3, 29, 3, 0, 0, 0, paris); !got.Equal(want) {
		t.Errorf("nextSweep = %v, want %v", got, want)
	}
	if got := e.svc.nextSweep(time.Date(2026, 3, 29, 3, 0, 0, 0, paris)); !got.Equal(time.Date(2026, 3, 30, 3, 0, 0, 0, paris)) {
		t.Errorf("nextSweep at the sweep time = %v", got)
	}
}

func TestStartWithContact(t *testing.T) {
	e := newEnv(t)
	m, link, msg, err := e.svc.StartWithContact(ctx, alice, bob, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Title != "Meeting with bob@example.com" || link != m.Link || !strings.Contains(msg, link) || !m.AllowGuests || m.Lobby || m.HasPassword {
		t.Errorf("meeting %+v, message %q", m, msg)
	}
	// The link works for anyone, now and later.
	e.join(m, JoinRequest{Name: "Someone"})
	e.clock.Advance(90 * 24 * time.Hour)
	e.join(m, JoinRequest{User: bob})
	ps, _ := e.svc.Participated(ctx, bob)
	if len(ps) != 1 || ps[0].Meeting.ID != m.ID || !ps[0].Invited {
		t.Errorf("bob's participated: %+v", ps)
	}
	m2, _, _, _ := e.svc.StartWithContact(ctx, alice, bob, "Design review")
	if m2.Title != "Design review" {
		t.Errorf("room name: %q", m2.Title)
	}
}

func TestSweepForgetsIdleRooms(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{})
	c := e.connect(e.join(m, JoinRequest{User: alice}))
	e.svc.disconnect(c.c)
	e.svc.Sweep(ctx)
	if n := len(e.svc.rooms); n != 1 {
		t.Fatalf("%d rooms within the grace, want 1", n)
	}
	e.clock.Advance(time.Hour)
	e.svc.Sweep(ctx)
	if n := len(e.svc.rooms); n != 0 {
		t.Errorf("%d rooms after the grace, want 0", n)
	}
	if _, err := e.svc.Authorize(ctx, c.cred); !errors.Is(err, ErrBadCredential) {
		t.Errorf("credential after pruning: %v", err)
	}
}
