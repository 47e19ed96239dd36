package memstore

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"

	"github.com/parleyhq/parley/storage"
)

// meetingData is what a Store keeps for storage.Meetings. It is guarded
// by the Store's mu, like everything else.
type meetingData struct {
	meetings map[string]storage.Meeting
	tokens   map[string]string // token -> meeting id
	chats    map[string]*chatLog
	files    map[string]map[string]storage.MeetingFile   // meeting id -> file id -> record
	parts    map[string]map[string]storage.Participation // user -> meeting id -> record
	prefs    map[string]storage.DevicePrefs
}

type chatLog struct {
	msgs    []storage.MeetingMessage
	lastSeq uint64
}

// sideTables holds each Store's meetingData, keyed weakly so that a Store
// that is garbage collected takes its data with it. It lives beside the
// Store rather than in it only because the meetings code arrived after
// Store's fields were settled (memstore.go is another change's file); it
// is not shared state between Stores: each has its own entry. Folding it
// into a Store field is a one-line change.
var sideTables sync.Map // weak.Pointer[Store] -> *meetingData

// meetingData returns s's tables, creating them on first use.
func (s *Store) meetingData() *meetingData {
	key := weak.Make(s)
	if d, ok := sideTables.Load(key); ok {
		return d.(*meetingData)
	}
	d := &meetingData{
		meetings: make(map[string]storage.Meeting),
		tokens:   make(map[string]string),
		chats:    make(map[string]*chatLog),
		files:    make(map[string]map[string]storage.MeetingFile),
		parts:    make(map[string]map[string]storage.Participation),
		prefs:    make(map[string]storage.DevicePrefs),
	}
	actual, loaded := sideTables.LoadOrStore(key, d)
	if !loaded {
		runtime.AddCleanup(s, func(k weak.Pointer[Store]) { sideTables.Delete(k) }, key)
	}
	return actual.(*meetingData)
}

func cloneMeeting(m storage.Meeting) storage.Meeting {
	m.Moderators = slices.Clone(m.Moderators)
	return m
}

// CreateMeeting stores a new meeting with Version 1.
func (s *Store) CreateMeeting(ctx context.Context, m storage.Meeting) error {
	if m.ID == "" || m.Token == "" || m.Organizer == "" {
		return errEmpty
	}
	return s.write(ctx, func() error {
		d := s.meetingData()
		if _, ok := d.meetings[m.ID]; ok {
			return storage.ErrMeetingConflict
		}
		if _, ok := d.tokens[m.Token]; ok {
			return storage.ErrMeetingConflict
		}
		m = cloneMeeting(m)
		m.Version = 1
		d.meetings[m.ID] = m
		d.tokens[m.Token] = m.ID
		return nil
	})
}

// Meeting returns the meeting with id, or storage.ErrNotFound.
func (s *Store) Meeting(ctx context.Context, id string) (storage.Meeting, error) {
	var m storage.Meeting
	err := s.read(ctx, func() error {
		got, ok := s.meetingData().meetings[id]
		if !ok {
			return storage.ErrNotFound
		}
		m = cloneMeeting(got)
		return nil
	})
	return m, err
}

// MeetingByToken returns the meeting whose link token is token.
func (s *Store) MeetingByToken(ctx context.Context, token string) (storage.Meeting, error) {
	var m storage.Meeting
	err := s.read(ctx, func() error {
		d := s.meetingData()
		id, ok := d.tokens[token]
		if !ok {
			return storage.ErrNotFound
		}
		m = cloneMeeting(d.meetings[id])
		return nil
	})
	return m, err
}

// UpdateMeeting replaces the meeting when m.Version is the stored one.
func (s *Store) UpdateMeeting(ctx context.Context, m storage.Meeting) (uint64, error) {
	if m.Token == "" {
		return 0, errEmpty
	}
	var ver uint64
	err := s.write(ctx, func() error {
		d := s.meetingData()
		cur, ok := d.meetings[m.ID]
		if !ok {
			return storage.ErrNotFound
		}
		if cur.Version != m.Version {
			return storage.ErrMeetingConflict
		}
		if m.Token != cur.Token {
			if _, taken := d.tokens[m.Token]; taken {
				return storage.ErrMeetingConflict
			}
			delete(d.tokens, cur.Token)
			d.tokens[m.Token] = m.ID
		}
		m = cloneMeeting(m)
		m.Organizer, m.Created = cur.Organizer, cur.Created
		m.Version = cur.Version + 1
		d.meetings[m.ID] = m
		ver = m.Version
		return nil
	})
	return ver, err
}

// DeleteMeeting removes the meeting and everything kept for it.
func (s *Store) DeleteMeeting(ctx context.Context, id string) error {
	return s.write(ctx, func() error {
		d := s.meetingData()
		m, ok := d.meetings[id]
		if !ok {
			return storage.ErrNotFound
		}
		delete(d.meetings, id)
		delete(d.tokens, m.Token)
		delete(d.chats, id)
		delete(d.files, id)
		for _, ps := range d.parts {
			delete(ps, id)
		}
		return nil
	})
}

// OrganizerMeetings returns organizer's meetings, oldest first.
func (s *Store) OrganizerMeetings(ctx context.Context, organizer string) ([]storage.Meeting, error) {
	var out []storage.Meeting
	err := s.read(ctx, func() error {
		for _, m := range s.meetingData().meetings {
			if m.Organizer == organizer {
				out = append(out, cloneMeeting(m))
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b storage.Meeting) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, err
}

// ListMeetings returns up to max meetings after afterID, in ID order.
func (s *Store) ListMeetings(ctx context.Context, afterID string, max int) ([]storage.Meeting, error) {
	if max <= 0 {
		max = 100
	}
	var out []storage.Meeting
	err := s.read(ctx, func() error {
		for id, m := range s.meetingData().meetings {
			if id > afterID {
				out = append(out, m)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b storage.Meeting) int { return strings.Compare(a.ID, b.ID) })
	if len(out) > max {
		out = out[:max]
	}
	for i := range out {
		out[i] = cloneMeeting(out[i])
	}
	return out, err
}

// AppendMeetingMessage stores msg and returns its Seq.
func (s *Store) AppendMeetingMessage(ctx context.Context, meetingID string, msg storage.MeetingMessage) (uint64, error) {
	var seq uint64
	err := s.write(ctx, func() error {
		d := s.meetingData()
		if _, ok := d.meetings[meetingID]; !ok {
			return storage.ErrNotFound
		}
		c := d.chats[meetingID]
		if c == nil {
			c = new(chatLog)
			d.chats[meetingID] = c
		}
		c.lastSeq++
		msg.Seq = c.lastSeq
		c.msgs = append(c.msgs, msg)
		seq = msg.Seq
		return nil
	})
	return seq, err
}

// MeetingMessages returns up to max messages after afterSeq.
func (s *Store) MeetingMessages(ctx context.Context, meetingID string, afterSeq uint64, max int) ([]storage.MeetingMessage, error) {
	if max <= 0 {
		max = 100
	}
	var out []storage.MeetingMessage
	err := s.read(ctx, func() error {
		c := s.meetingData().chats[meetingID]
		if c == nil {
			return nil
		}
		i, _ := slices.BinarySearchFunc(c.msgs, afterSeq+1, func(m storage.MeetingMessage, seq uint64) int { return cmp.Compare(m.Seq, seq) })
		end := min(len(c.msgs), i+max)
		if i < end {
			out = slices.Clone(c.msgs[i:end])
		}
		return nil
	})
	return out, err
}

// DeleteMeetingMessages removes all of a meeting's messages; Seqs are
// not reused.
func (s *Store) DeleteMeetingMessages(ctx context.Context, meetingID string) error {
	return s.write(ctx, func() error {
		if c := s.meetingData().chats[meetingID]; c != nil {
			c.msgs = nil
		}
		return nil
	})
}

// PutMeetingFile stores a file record.
func (s *Store) PutMeetingFile(ctx context.Context, meetingID string, f storage.MeetingFile) error {
	if f.ID == "" {
		return errEmpty
	}
	return s.write(ctx, func() error {
		d := s.meetingData()
		if _, ok := d.meetings[meetingID]; !ok {
			return storage.ErrNotFound
		}
		fs := d.files[meetingID]
		if fs == nil {
			fs = make(map[string]storage.MeetingFile)
			d.files[meetingID] = fs
		}
		fs[f.ID] = f
		return nil
	})
}

// MeetingFiles returns a meeting's files, oldest first.
func (s *Store) MeetingFiles(ctx context.Context, meetingID string) ([]storage.MeetingFile, error) {
	var out []storage.MeetingFile
	err := s.read(ctx, func() error {
		for _, f := range s.meetingData().files[meetingID] {
			out = append(out, f)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b storage.MeetingFile) int {
		return cmp.Or(a.Stamp.Compare(b.Stamp), strings.Compare(a.ID, b.ID))
	})
	return out, err
}

// DeleteMeetingFile removes a file record.
func (s *Store) DeleteMeetingFile(ctx context.Context, meetingID, fileID string) error {
	return s.write(ctx, func() error {
		fs := s.meetingData().files[meetingID]
		if _, ok := fs[fileID]; !ok {
			return storage.ErrNotFound
		}
		delete(fs, fileID)
		return nil
	})
}

// PutParticipation creates or replaces a participation record.
func (s *Store) PutParticipation(ctx context.Context, p storage.Participation) error {
	if p.User == "" || p.MeetingID == "" {
		return errEmpty
	}
	return s.write(ctx, func() error {
		d := s.meetingData()
		if _, ok := d.meetings[p.MeetingID]; !ok {
			return storage.ErrNotFound
		}
		ps := d.parts[p.User]
		if ps == nil {
			ps = make(map[string]storage.Participation)
			d.parts[p.User] = ps
		}
		ps[p.MeetingID] = p
		return nil
	})
}

// Participation returns one record, or storage.ErrNotFound.
func (s *Store) Participation(ctx context.Context, user, meetingID string) (storage.Participation, error) {
	var p storage.Participation
	err := s.read(ctx, func() error {
		got, ok := s.meetingData().parts[user][meetingID]
		if !ok {
			return storage.ErrNotFound
		}
		p = got
		return nil
	})
	return p, err
}

// Participations returns user's records in MeetingID order.
func (s *Store) Participations(ctx context.Context, user string) ([]storage.Participation, error) {
	var out []storage.Participation
	err := s.read(ctx, func() error {
		for _, p := range s.meetingData().parts[user] {
			out = append(out, p)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b storage.Participation) int { return strings.Compare(a.MeetingID, b.MeetingID) })
	return out, err
}

// DevicePrefs returns user's preferences, or storage.ErrNotFound.
func (s *Store) DevicePrefs(ctx context.Context, user string) (storage.DevicePrefs, error) {
	var p storage.DevicePrefs
	err := s.read(ctx, func() error {
		got, ok := s.meetingData().prefs[user]
		if !ok {
			return storage.ErrNotFound
		}
		p = got
		return nil
	})
	return p, err
}

// PutDevicePrefs stores user's preferences.
func (s *Store) PutDevicePrefs(ctx context.Context, user string, p storage.DevicePrefs) error {
	if user == "" {
		return errEmpty
	}
	return s.write(ctx, func() error {
		s.meetingData().prefs[user] = p
		return nil
	})
}

var _ storage.Meetings = (*Store)(nil)
