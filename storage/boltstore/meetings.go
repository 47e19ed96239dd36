package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/parleyhq/parley/storage"
	bolt "go.etcd.io/bbolt"
)

// Meetings live under one top-level bucket, created on the first write
// (files made before meetings existed read as having none):
//
//	meetings/rooms/<id>                  meeting
//	meetings/tokens/<token>              meeting id
//	meetings/orgs/<organizer>/<id>       empty (index)
//	meetings/chat/<id>/<seq>             message; seq 8 bytes big endian,
//	                                     the nested bucket's sequence is
//	                                     the last seq handed out
//	meetings/files/<id>/<file id>        file record
//	meetings/parts/<user>/<id>           participation
//	meetings/partidx/<id>/<user>         empty (index, for DeleteMeeting)
//	meetings/prefs/<user>                device preferences
//
// Values are a format byte (1) followed by JSON. Unlike roster items,
// which every login decodes by the hundred, meeting records are read a
// few at a time; JSON keeps them readable and lets fields be added
// without a new format.
var (
	bucketMeetings = []byte("meetings")

	mbRooms   = []byte("rooms")
	mbTokens  = []byte("tokens")
	mbOrgs    = []byte("orgs")
	mbChat    = []byte("chat")
	mbFiles   = []byte("files")
	mbParts   = []byte("parts")
	mbPartIdx = []byte("partidx")
	mbPrefs   = []byte("prefs")
)

const formatJSON = 1

var _ storage.Meetings = (*Store)(nil)

func encodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{formatJSON}, b...), nil
}

func decodeJSON(b []byte, v any) error {
	if len(b) < 1 || b[0] != formatJSON {
		return errCorrupt
	}
	if err := json.Unmarshal(b[1:], v); err != nil {
		return errCorrupt
	}
	return nil
}

// mb returns the nested bucket name under meetings, or nil when it does
// not exist (nothing written yet).
func mb(tx *bolt.Tx, name []byte) *bolt.Bucket {
	top := tx.Bucket(bucketMeetings)
	if top == nil {
		return nil
	}
	return top.Bucket(name)
}

// mbw is mb for writers: it creates what is missing.
func mbw(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	top, err := tx.CreateBucketIfNotExists(bucketMeetings)
	if err != nil {
		return nil, err
	}
	return top.CreateBucketIfNotExists(name)
}

// sub returns b's nested bucket key, or nil.
func sub(b *bolt.Bucket, key string) *bolt.Bucket {
	if b == nil {
		return nil
	}
	return b.Bucket([]byte(key))
}

func getMeeting(tx *bolt.Tx, id string) (storage.Meeting, error) {
	var m storage.Meeting
	v, ok := get(mb(tx, mbRooms), []byte(id))
	if !ok {
		return m, storage.ErrNotFound
	}
	if err := decodeJSON(v, &m); err != nil {
		return m, corrupt(err, "meetings/rooms", nil, []byte(id))
	}
	return m, nil
}

func meetingExists(tx *bolt.Tx, id string) bool {
	_, ok := get(mb(tx, mbRooms), []byte(id))
	return ok
}

func putMeeting(tx *bolt.Tx, m storage.Meeting) error {
	rooms, err := mbw(tx, mbRooms)
	if err != nil {
		return err
	}
	v, err := encodeJSON(m)
	if err != nil {
		return err
	}
	return rooms.Put([]byte(m.ID), v)
}

// CreateMeeting stores a new meeting with Version 1, or returns
// storage.ErrMeetingConflict when its ID or token is taken.
func (s *Store) CreateMeeting(ctx context.Context, m storage.Meeting) error {
	if m.ID == "" || m.Token == "" || m.Organizer == "" {
		return errEmpty
	}
	m.Version = 1
	return s.update(ctx, func(tx *bolt.Tx) error {
		tokens, err := mbw(tx, mbTokens)
		if err != nil {
			return err
		}
		if meetingExists(tx, m.ID) {
			return storage.ErrMeetingConflict
		}
		if _, ok := get(tokens, []byte(m.Token)); ok {
			return storage.ErrMeetingConflict
		}
		if err := putMeeting(tx, m); err != nil {
			return err
		}
		if err := tokens.Put([]byte(m.Token), []byte(m.ID)); err != nil {
			return err
		}
		orgs, err := mbw(tx, mbOrgs)
		if err != nil {
			return err
		}
		ob, err := orgs.CreateBucketIfNotExists([]byte(m.Organizer))
		if err != nil {
			return err
		}
		return ob.Put([]byte(m.ID), nil)
	})
}

// Meeting returns the meeting with id, or storage.ErrNotFound.
func (s *Store) Meeting(ctx context.Context, id string) (storage.Meeting, error) {
	var m storage.Meeting
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		m, err = getMeeting(tx, id)
		return err
	})
	return m, err
}

// MeetingByToken returns the meeting whose link token is token.
func (s *Store) MeetingByToken(ctx context.Context, token string) (storage.Meeting, error) {
	var m storage.Meeting
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id, ok := get(mb(tx, mbTokens), []byte(token))
		if !ok || token == "" {
			return storage.ErrNotFound
		}
		var err error
		m, err = getMeeting(tx, string(id))
		return err
	})
	return m, err
}

// UpdateMeeting replaces the meeting when m.Version is the stored one and
// returns the new Version.
func (s *Store) UpdateMeeting(ctx context.Context, m storage.Meeting) (uint64, error) {
	if m.ID == "" || m.Token == "" {
		return 0, errEmpty
	}
	var ver uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		cur, err := getMeeting(tx, m.ID)
		if err != nil {
			return err
		}
		if cur.Version != m.Version {
			return storage.ErrMeetingConflict
		}
		next := m
		next.Organizer, next.Created = cur.Organizer, cur.Created
		next.Version = cur.Version + 1
		if next.Token != cur.Token {
			tokens, err := mbw(tx, mbTokens)
			if err != nil {
				return err
			}
			if _, ok := get(tokens, []byte(next.Token)); ok {
				return storage.ErrMeetingConflict
			}
			if err := tokens.Delete([]byte(cur.Token)); err != nil {
				return err
			}
			if err := tokens.Put([]byte(next.Token), []byte(next.ID)); err != nil {
				return err
			}
		}
		ver = next.Version
		return putMeeting(tx, next)
	})
	if err != nil {
		return 0, err
	}
	return ver, nil
}

// DeleteMeeting removes the meeting and everything kept for it.
func (s *Store) DeleteMeeting(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		m, err := getMeeting(tx, id)
		if err != nil {
			return err
		}
		key := []byte(id)
		if err := mb(tx, mbRooms).Delete(key); err != nil {
			return err
		}
		if b := mb(tx, mbTokens); b != nil {
			if err := b.Delete([]byte(m.Token)); err != nil {
				return err
			}
		}
		if ob := sub(mb(tx, mbOrgs), m.Organizer); ob != nil {
			if err := ob.Delete(key); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{mbChat, mbFiles} {
			if b := mb(tx, name); b != nil && b.Bucket(key) != nil {
				if err := b.DeleteBucket(key); err != nil {
					return err
				}
			}
		}
		idx := mb(tx, mbPartIdx)
		if users := sub(idx, id); users != nil {
			parts := mb(tx, mbParts)
			err := users.ForEach(func(user, _ []byte) error {
				if pb := sub(parts, string(user)); pb != nil {
					return pb.Delete(key)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if err := idx.DeleteBucket(key); err != nil {
				return err
			}
		}
		return nil
	})
}

// OrganizerMeetings returns organizer's meetings, oldest first.
func (s *Store) OrganizerMeetings(ctx context.Context, organizer string) ([]storage.Meeting, error) {
	var out []storage.Meeting
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		ob := sub(mb(tx, mbOrgs), organizer)
		if ob == nil {
			return nil
		}
		return ob.ForEach(func(id, _ []byte) error {
			m, err := getMeeting(tx, string(id))
			if err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b storage.Meeting) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// ListMeetings returns up to max meetings after afterID, in ID order.
func (s *Store) ListMeetings(ctx context.Context, afterID string, max int) ([]storage.Meeting, error) {
	if max <= 0 {
		max = 100
	}
	var out []storage.Meeting
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rooms := mb(tx, mbRooms)
		if rooms == nil {
			return nil
		}
		c := rooms.Cursor()
		k, v := c.Seek([]byte(afterID))
		if k != nil && bytes.Equal(k, []byte(afterID)) {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < max; k, v = c.Next() {
			var m storage.Meeting
			if err := decodeJSON(v, &m); err != nil {
				return corrupt(err, "meetings/rooms", nil, k)
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendMeetingMessage stores msg and returns its Seq.
func (s *Store) AppendMeetingMessage(ctx context.Context, meetingID string, msg storage.MeetingMessage) (uint64, error) {
	if meetingID == "" {
		return 0, errEmpty
	}
	var seq uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if !meetingExists(tx, meetingID) {
			return storage.ErrNotFound
		}
		chat, err := mbw(tx, mbChat)
		if err != nil {
			return err
		}
		b, err := chat.CreateBucketIfNotExists([]byte(meetingID))
		if err != nil {
			return err
		}
		if seq, err = b.NextSequence(); err != nil {
			return err
		}
		m := msg
		m.Seq = seq
		v, err := encodeJSON(m)
		if err != nil {
			return err
		}
		return b.Put(seqKey(seq), v)
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// MeetingMessages returns up to max messages after afterSeq.
func (s *Store) MeetingMessages(ctx context.Context, meetingID string, afterSeq uint64, max int) ([]storage.MeetingMessage, error) {
	if max <= 0 {
		max = 100
	}
	var out []storage.MeetingMessage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := sub(mb(tx, mbChat), meetingID)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(afterSeq + 1)); k != nil && len(out) < max; k, v = c.Next() {
			var m storage.MeetingMessage
			if err := decodeJSON(v, &m); err != nil {
				return corrupt(err, "meetings/chat", []byte(meetingID), k)
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteMeetingMessages removes all of a meeting's messages; the nested
// bucket stays, so Seqs are not reused.
func (s *Store) DeleteMeetingMessages(ctx context.Context, meetingID string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := sub(mb(tx, mbChat), meetingID)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutMeetingFile stores a file record.
func (s *Store) PutMeetingFile(ctx context.Context, meetingID string, f storage.MeetingFile) error {
	if meetingID == "" || f.ID == "" {
		return errEmpty
	}
	v, err := encodeJSON(f)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if !meetingExists(tx, meetingID) {
			return storage.ErrNotFound
		}
		files, err := mbw(tx, mbFiles)
		if err != nil {
			return err
		}
		b, err := files.CreateBucketIfNotExists([]byte(meetingID))
		if err != nil {
			return err
		}
		return b.Put([]byte(f.ID), v)
	})
}

// MeetingFiles returns a meeting's files, oldest first.
func (s *Store) MeetingFiles(ctx context.Context, meetingID string) ([]storage.MeetingFile, error) {
	var out []storage.MeetingFile
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := sub(mb(tx, mbFiles), meetingID)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var f storage.MeetingFile
			if err := decodeJSON(v, &f); err != nil {
				return corrupt(err, "meetings/files", []byte(meetingID), k)
			}
			out = append(out, f)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b storage.MeetingFile) int {
		return cmp.Or(a.Stamp.Compare(b.Stamp), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteMeetingFile removes a file record, or returns storage.ErrNotFound.
func (s *Store) DeleteMeetingFile(ctx context.Context, meetingID, fileID string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := sub(mb(tx, mbFiles), meetingID)
		if _, ok := get(b, []byte(fileID)); !ok {
			return storage.ErrNotFound
		}
		return b.Delete([]byte(fileID))
	})
}

// PutParticipation creates or replaces a participation record.
func (s *Store) PutParticipation(ctx context.Context, p storage.Participation) error {
	if p.User == "" || p.MeetingID == "" {
		return errEmpty
	}
	v, err := encodeJSON(p)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if !meetingExists(tx, p.MeetingID) {
			return storage.ErrNotFound
		}
		parts, err := mbw(tx, mbParts)
		if err != nil {
			return err
		}
		pb, err := parts.CreateBucketIfNotExists([]byte(p.User))
		if err != nil {
			return err
		}
		if err := pb.Put([]byte(p.MeetingID), v); err != nil {
			return err
		}
		idx, err := mbw(tx, mbPartIdx)
		if err != nil {
			return err
		}
		ib, err := idx.CreateBucketIfNotExists([]byte(p.MeetingID))
		if err != nil {
			return err
		}
		return ib.Put([]byte(p.User), nil)
	})
}

// Participation returns one record, or storage.ErrNotFound.
func (s *Store) Participation(ctx context.Context, user, meetingID string) (storage.Participation, error) {
	var p storage.Participation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, ok := get(sub(mb(tx, mbParts), user), []byte(meetingID))
		if !ok {
			return storage.ErrNotFound
		}
		if err := decodeJSON(v, &p); err != nil {
			return corrupt(err, "meetings/parts", []byte(user), []byte(meetingID))
		}
		return nil
	})
	return p, err
}

// Participations returns user's records in MeetingID order.
func (s *Store) Participations(ctx context.Context, user string) ([]storage.Participation, error) {
	var out []storage.Participation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		pb := sub(mb(tx, mbParts), user)
		if pb == nil {
			return nil
		}
		return pb.ForEach(func(k, v []byte) error {
			var p storage.Participation
			if err := decodeJSON(v, &p); err != nil {
				return corrupt(err, "meetings/parts", []byte(user), k)
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DevicePrefs returns user's preferences, or storage.ErrNotFound.
func (s *Store) DevicePrefs(ctx context.Context, user string) (storage.DevicePrefs, error) {
	var p storage.DevicePrefs
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, ok := get(mb(tx, mbPrefs), []byte(user))
		if !ok {
			return storage.ErrNotFound
		}
		if err := decodeJSON(v, &p); err != nil {
			return corrupt(err, "meetings/prefs", nil, []byte(user))
		}
		return nil
	})
	return p, err
}

// PutDevicePrefs stores user's preferences.
func (s *Store) PutDevicePrefs(ctx context.Context, user string, p storage.DevicePrefs) error {
	if user == "" {
		return errEmpty
	}
	v, err := encodeJSON(p)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := mbw(tx, mbPrefs)
		if err != nil {
			return err
		}
		return b.Put([]byte(user), v)
	})
}
