package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

// MeetingsStore is what RunMeetingsTests needs: storage.Meetings and
// Close. A storage.Store that includes storage.Meetings is one.
type MeetingsStore interface {
	storage.Meetings
	Close() error
}

// RunMeetingsTests checks that the stores made by newStore keep the
// storage.Meetings contract, under the same rules as RunConformanceTests
// (a fresh empty store per subtest, closed when it ends).
func RunMeetingsTests[S MeetingsStore](t *testing.T, newStore func(t *testing.T) S) {
	t.Helper()
	open := func(t *testing.T) S {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	tests := []struct {
		name string
		fn   func(*testing.T, MeetingsStore)
	}{
		{"CreateGet", testMeetingCreateGet},
		{"Conflicts", testMeetingConflicts},
		{"Update", testMeetingUpdate},
		{"Delete", testMeetingDelete},
		{"Lists", testMeetingLists},
		{"Chat", testMeetingChat},
		{"Files", testMeetingFiles},
		{"Participations", testMeetingParticipations},
		{"Prefs", testMeetingPrefs},
		{"ConcurrentChat", testMeetingConcurrentChat},
		{"ConcurrentUpdate", testMeetingConcurrentUpdate},
	}
	for _, tc := range tests {
		t.Run("Meetings/"+tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var meetingEpoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func sampleMeeting(n int, organizer string) storage.Meeting {
	return storage.Meeting{
		ID:                fmt.Sprintf("m%03d", n),
		Token:             fmt.Sprintf("tok%03d", n),
		Organizer:         organizer,
		Created:           meetingEpoch.Add(time.Duration(n) * time.Minute),
		Title:             fmt.Sprintf("Meeting %d ☕", n),
		PasswordHash:      "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA",
		AllowGuests:       true,
		AttendeesCanStart: true,
		Uploads:           2,
		Lobby:             true,
		Recording:         true,
		Scheduled:         true,
		ScheduleStart:     meetingEpoch.Add(24 * time.Hour),
		ScheduleEnd:       meetingEpoch.Add(25 * time.Hour),
		TimeZone:          "Europe/Paris",
		RRule:             "FREQ=WEEKLY;COUNT=3",
		EndBehaviour:      1,
		AppointmentID:     "appt-" + fmt.Sprint(n),
		Moderators:        []string{"u:" + bob, "g:guest1"},
	}
}

func sameMeeting(a, b storage.Meeting) bool {
	return a.ID == b.ID && a.Token == b.Token && a.Organizer == b.Organizer &&
		a.Version == b.Version && a.Created.Equal(b.Created) && a.Title == b.Title &&
		a.PasswordHash == b.PasswordHash && a.AllowGuests == b.AllowGuests &&
		a.AttendeesCanStart == b.AttendeesCanStart && a.Uploads == b.Uploads &&
		a.Lobby == b.Lobby && a.Recording == b.Recording && a.Scheduled == b.Scheduled &&
		a.ScheduleStart.Equal(b.ScheduleStart) && a.ScheduleEnd.Equal(b.ScheduleEnd) &&
		a.TimeZone == b.TimeZone && a.RRule == b.RRule && a.EndBehaviour == b.EndBehaviour &&
		a.Archived == b.Archived && a.AppointmentID == b.AppointmentID &&
		slices.Equal(a.Moderators, b.Moderators)
}

func mustCreateMeeting(t *testing.T, s MeetingsStore, m storage.Meeting) {
	t.Helper()
	if err := s.CreateMeeting(ctx(), m); err != nil {
		t.Fatalf("CreateMeeting(%q): %v", m.ID, err)
	}
}

func testMeetingCreateGet(t *testing.T, s MeetingsStore) {
	if _, err := s.Meeting(ctx(), "m001"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Meeting of empty store: err = %v, want ErrNotFound", err)
	}
	if _, err := s.MeetingByToken(ctx(), "tok001"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("MeetingByToken of empty store: err = %v, want ErrNotFound", err)
	}
	m := sampleMeeting(1, alice)
	m.Version = 42 // ignored
	mustCreateMeeting(t, s, m)
	want := m
	want.Version = 1
	got, err := s.Meeting(ctx(), m.ID)
	if err != nil || !sameMeeting(got, want) {
		t.Fatalf("Meeting = %+v, %v\nwant %+v", got, err, want)
	}
	got, err = s.MeetingByToken(ctx(), m.Token)
	if err != nil || !sameMeeting(got, want) {
		t.Fatalf("MeetingByToken = %+v, %v\nwant %+v", got, err, want)
	}
	// A zero-valued meeting (beyond the keys) comes back zero.
	z := storage.Meeting{ID: "z", Token: "ztok", Organizer: bob}
	mustCreateMeeting(t, s, z)
	got, err = s.Meeting(ctx(), "z")
	z.Version = 1
	if err != nil || !sameMeeting(got, z) || !got.Created.IsZero() || len(got.Moderators) != 0 {
		t.Errorf("zero meeting = %+v, %v", got, err)
	}
	// No aliasing: mutating what was returned changes nothing stored.
	got, _ = s.Meeting(ctx(), m.ID)
	got.Moderators[0] = "mutated"
	again, _ := s.Meeting(ctx(), m.ID)
	if again.Moderators[0] != "u:"+bob {
		t.Errorf("store aliases the Moderators slice it returned")
	}
}

func testMeetingConflicts(t *testing.T, s MeetingsStore) {
	mustCreateMeeting(t, s, sampleMeeting(1, alice))
	dupID := sampleMeeting(1, bob)
	dupID.Token = "other"
	if err := s.CreateMeeting(ctx(), dupID); !errors.Is(err, storage.ErrMeetingConflict) {
		t.Errorf("CreateMeeting with a taken ID: err = %v, want ErrMeetingConflict", err)
	}
	dupTok := sampleMeeting(2, bob)
	dupTok.Token = "tok001"
	if err := s.CreateMeeting(ctx(), dupTok); !errors.Is(err, storage.ErrMeetingConflict) {
		t.Errorf("CreateMeeting with a taken token: err = %v, want ErrMeetingConflict", err)
	}
	if _, err := s.Meeting(ctx(), "m002"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("failed create stored something: %v", err)
	}
	if ms, _ := s.OrganizerMeetings(ctx(), bob); len(ms) != 0 {
		t.Errorf("failed creates left %d meetings for bob", len(ms))
	}
}

func testMeetingUpdate(t *testing.T, s MeetingsStore) {
	m := sampleMeeting(1, alice)
	mustCreateMeeting(t, s, sampleMeeting(2, alice))
	mustCreateMeeting(t, s, m)
	m.Version = 1
	m.Title = "Renamed"
	m.Lobby = false
	m.Moderators = nil
	m.Organizer = carol     // ignored
	m.Created = time.Time{} // ignored
	m.Token = "newtok"      // the link changes
	ver, err := s.UpdateMeeting(ctx(), m)
	if err != nil || ver != 2 {
		t.Fatalf("UpdateMeeting = %d, %v; want 2, nil", ver, err)
	}
	got, err := s.Meeting(ctx(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != "Renamed" || got.Lobby || len(got.Moderators) != 0 || got.Version != 2 ||
		got.Organizer != alice || !got.Created.Equal(sampleMeeting(1, alice).Created) {
		t.Errorf("after update: %+v", got)
	}
	if _, err := s.MeetingByToken(ctx(), "tok001"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("old token still finds the meeting: %v", err)
	}
	if got, err := s.MeetingByToken(ctx(), "newtok"); err != nil || got.ID != m.ID {
		t.Errorf("new token: %+v, %v", got, err)
	}
	// Stale version.
	if _, err := s.UpdateMeeting(ctx(), m); !errors.Is(err, storage.ErrMeetingConflict) {
		t.Errorf("UpdateMeeting with stale version: err = %v, want ErrMeetingConflict", err)
	}
	// A token another meeting has.
	m.Version = 2
	m.Token = "tok002"
	if _, err := s.UpdateMeeting(ctx(), m); !errors.Is(err, storage.ErrMeetingConflict) {
		t.Errorf("UpdateMeeting to a taken token: err = %v, want ErrMeetingConflict", err)
	}
	if got, _ := s.Meeting(ctx(), m.ID); got.Version != 2 || got.Token != "newtok" {
		t.Errorf("failed update changed the meeting: %+v", got)
	}
	missing := sampleMeeting(9, alice)
	if _, err := s.UpdateMeeting(ctx(), missing); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateMeeting of a missing meeting: err = %v, want ErrNotFound", err)
	}
}

func testMeetingDelete(t *testing.T, s MeetingsStore) {
	m, other := sampleMeeting(1, alice), sampleMeeting(2, alice)
	mustCreateMeeting(t, s, m)
	mustCreateMeeting(t, s, other)
	for _, id := range []string{m.ID, other.ID} {
		if _, err := s.AppendMeetingMessage(ctx(), id, storage.MeetingMessage{Body: "hi"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMeetingFile(ctx(), id, storage.MeetingFile{ID: "f1", Name: "a.txt", Size: 3}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutParticipation(ctx(), storage.Participation{User: bob, MeetingID: id, First: meetingEpoch}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMeeting(ctx(), m.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMeeting(ctx(), m.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second DeleteMeeting: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Meeting(ctx(), m.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted meeting: %v", err)
	}
	if _, err := s.MeetingByToken(ctx(), m.Token); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted meeting's token: %v", err)
	}
	if msgs, _ := s.MeetingMessages(ctx(), m.ID, 0, 0); len(msgs) != 0 {
		t.Errorf("deleted meeting kept %d messages", len(msgs))
	}
	if fs, _ := s.MeetingFiles(ctx(), m.ID); len(fs) != 0 {
		t.Errorf("deleted meeting kept %d files", len(fs))
	}
	if _, err := s.Participation(ctx(), bob, m.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted meeting kept bob's participation: %v", err)
	}
	if ms, _ := s.OrganizerMeetings(ctx(), alice); len(ms) != 1 || ms[0].ID != other.ID {
		t.Errorf("OrganizerMeetings after delete = %+v", ms)
	}
	// The other meeting is untouched.
	if msgs, _ := s.MeetingMessages(ctx(), other.ID, 0, 0); len(msgs) != 1 {
		t.Errorf("other meeting has %d messages, want 1", len(msgs))
	}
	if ps, _ := s.Participations(ctx(), bob); len(ps) != 1 || ps[0].MeetingID != other.ID {
		t.Errorf("bob's participations = %+v", ps)
	}
	// Writes for a meeting that no longer exists fail.
	if _, err := s.AppendMeetingMessage(ctx(), m.ID, storage.MeetingMessage{Body: "late"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("AppendMeetingMessage to deleted meeting: err = %v, want ErrNotFound", err)
	}
	if err := s.PutMeetingFile(ctx(), m.ID, storage.MeetingFile{ID: "f2"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutMeetingFile to deleted meeting: err = %v, want ErrNotFound", err)
	}
	if err := s.PutParticipation(ctx(), storage.Participation{User: bob, MeetingID: m.ID}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutParticipation to deleted meeting: err = %v, want ErrNotFound", err)
	}
}

func testMeetingLists(t *testing.T, s MeetingsStore) {
	// Created out of ID order, to tell creation order from ID order.
	for _, n := range []int{5, 3, 1, 4, 2} {
		org := alice
		if n%2 == 0 {
			org = bob
		}
		mustCreateMeeting(t, s, sampleMeeting(n, org))
	}
	ms, err := s.OrganizerMeetings(ctx(), alice)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{"m001", "m003", "m005"}) {
		t.Errorf("OrganizerMeetings(alice) = %v", ids)
	}
	if ms, _ := s.OrganizerMeetings(ctx(), carol); len(ms) != 0 {
		t.Errorf("OrganizerMeetings(carol) = %d meetings", len(ms))
	}
	var all []string
	after := ""
	for {
		page, err := s.ListMeetings(ctx(), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("ListMeetings returned %d, max 2", len(page))
		}
		for _, m := range page {
			all = append(all, m.ID)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(all, []string{"m001", "m002", "m003", "m004", "m005"}) {
		t.Errorf("ListMeetings pages = %v", all)
	}
	if page, _ := s.ListMeetings(ctx(), "m0025", 0); len(page) != 3 || page[0].ID != "m003" {
		t.Errorf("ListMeetings after an absent ID = %d items", len(page))
	}
}

func testMeetingChat(t *testing.T, s MeetingsStore) {
	m := sampleMeeting(1, alice)
	mustCreateMeeting(t, s, m)
	if _, err := s.AppendMeetingMessage(ctx(), "nope", storage.MeetingMessage{Body: "x"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("AppendMeetingMessage to unknown meeting: err = %v", err)
	}
	for i := 1; i <= 5; i++ {
		seq, err := s.AppendMeetingMessage(ctx(), m.ID, storage.MeetingMessage{
			Seq: 99, Stamp: meetingEpoch.Add(time.Duration(i) * time.Second),
			From: "g:guest", Name: "Gäst", Body: fmt.Sprintf("message %d — ✓", i),
		})
		if err != nil || seq != uint64(i) {
			t.Fatalf("AppendMeetingMessage #%d = %d, %v", i, seq, err)
		}
	}
	msgs, err := s.MeetingMessages(ctx(), m.ID, 0, 0)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("MeetingMessages = %d, %v", len(msgs), err)
	}
	if g := msgs[2]; g.Seq != 3 || g.Body != "message 3 — ✓" || g.From != "g:guest" || g.Name != "Gäst" ||
		!g.Stamp.Equal(meetingEpoch.Add(3*time.Second)) {
		t.Errorf("message 3 = %+v", g)
	}
	if page, _ := s.MeetingMessages(ctx(), m.ID, 2, 2); len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
		t.Errorf("page after 2, max 2 = %+v", page)
	}
	if err := s.DeleteMeetingMessages(ctx(), m.ID); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := s.MeetingMessages(ctx(), m.ID, 0, 0); len(msgs) != 0 {
		t.Errorf("after delete: %d messages", len(msgs))
	}
	if seq, err := s.AppendMeetingMessage(ctx(), m.ID, storage.MeetingMessage{Body: "again"}); err != nil || seq != 6 {
		t.Errorf("Seq after delete = %d, %v; want 6 (never reused)", seq, err)
	}
	if err := s.DeleteMeetingMessages(ctx(), "nope"); err != nil {
		t.Errorf("DeleteMeetingMessages of unknown meeting: %v", err)
	}
}

func testMeetingFiles(t *testing.T, s MeetingsStore) {
	m := sampleMeeting(1, alice)
	mustCreateMeeting(t, s, m)
	f1 := storage.MeetingFile{ID: "b", Name: "report.pdf", ContentType: "application/pdf", Size: 1234,
		Ref: "ref-1", Uploader: "u:" + alice, UploaderName: "Alice", Stamp: meetingEpoch}
	f2 := storage.MeetingFile{ID: "a", Name: "photo.jpg", Size: 99, Ref: "ref-2", Stamp: meetingEpoch.Add(time.Second)}
	for _, f := range []storage.MeetingFile{f2, f1} {
		if err := s.PutMeetingFile(ctx(), m.ID, f); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := s.MeetingFiles(ctx(), m.ID)
	if err != nil || len(fs) != 2 {
		t.Fatalf("MeetingFiles = %+v, %v", fs, err)
	}
	if fs[0] != f1 || fs[1] != f2 {
		t.Errorf("MeetingFiles = %+v, want [%+v %+v]", fs, f1, f2)
	}
	if err := s.DeleteMeetingFile(ctx(), m.ID, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMeetingFile(ctx(), m.ID, "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second DeleteMeetingFile: err = %v", err)
	}
	if fs, _ := s.MeetingFiles(ctx(), m.ID); len(fs) != 1 || fs[0].ID != "a" {
		t.Errorf("after delete: %+v", fs)
	}
}

func testMeetingParticipations(t *testing.T, s MeetingsStore) {
	for n := 1; n <= 3; n++ {
		mustCreateMeeting(t, s, sampleMeeting(n, alice))
	}
	if _, err := s.Participation(ctx(), bob, "m001"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Participation before any: err = %v", err)
	}
	p := storage.Participation{User: bob, MeetingID: "m002", First: meetingEpoch, Last: meetingEpoch.Add(time.Hour)}
	for _, q := range []storage.Participation{p, {User: bob, MeetingID: "m001", Invited: true}, {User: carol, MeetingID: "m001"}} {
		if err := s.PutParticipation(ctx(), q); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Participation(ctx(), bob, "m002")
	if err != nil || got.User != bob || !got.First.Equal(p.First) || !got.Last.Equal(p.Last) || got.Invited {
		t.Errorf("Participation = %+v, %v", got, err)
	}
	p.Last = meetingEpoch.Add(2 * time.Hour)
	if err := s.PutParticipation(ctx(), p); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Participations(ctx(), bob)
	if err != nil || len(ps) != 2 || ps[0].MeetingID != "m001" || !ps[0].Invited || !ps[1].Last.Equal(p.Last) {
		t.Errorf("Participations(bob) = %+v, %v", ps, err)
	}
	if ps, _ := s.Participations(ctx(), alice); len(ps) != 0 {
		t.Errorf("Participations(alice) = %+v", ps)
	}
}

func testMeetingPrefs(t *testing.T, s MeetingsStore) {
	if _, err := s.DevicePrefs(ctx(), alice); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DevicePrefs before any: err = %v", err)
	}
	p := storage.DevicePrefs{Microphone: "mic-1", Camera: "cam-2", WebcamQuality: "high", Speakers: "spk-3"}
	if err := s.PutDevicePrefs(ctx(), alice, p); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DevicePrefs(ctx(), alice); err != nil || got != p {
		t.Errorf("DevicePrefs = %+v, %v", got, err)
	}
	p.WebcamQuality = "low"
	if err := s.PutDevicePrefs(ctx(), alice, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DevicePrefs(ctx(), alice); got != p {
		t.Errorf("after replace: %+v", got)
	}
	if _, err := s.DevicePrefs(ctx(), bob); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("bob's prefs: err = %v", err)
	}
}

func testMeetingConcurrentChat(t *testing.T, s MeetingsStore) {
	m := sampleMeeting(1, alice)
	mustCreateMeeting(t, s, m)
	const n = 50
	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			seq, err := s.AppendMeetingMessage(ctx(), m.ID, storage.MeetingMessage{Body: fmt.Sprint(i)})
			if err != nil {
				t.Error(err)
			}
			seqs[i] = seq
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("concurrent appends got seqs %v, want 1..%d", seqs, n)
		}
	}
}

func testMeetingConcurrentUpdate(t *testing.T, s MeetingsStore) {
	m := sampleMeeting(1, alice)
	mustCreateMeeting(t, s, m)
	m.Version = 1
	const n = 20
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won int
	)
	for i := range n {
		wg.Go(func() {
			u := m
			u.Title = fmt.Sprint(i)
			_, err := s.UpdateMeeting(ctx(), u)
			switch {
			case err == nil:
				mu.Lock()
				won++
				mu.Unlock()
			case !errors.Is(err, storage.ErrMeetingConflict):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d updates from version 1 succeeded, want exactly 1", won)
	}
	if got, _ := s.Meeting(ctx(), m.ID); got.Version != 2 {
		t.Errorf("version = %d, want 2", got.Version)
	}
}
