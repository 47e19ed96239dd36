package meeting

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Appointment is a calendar appointment that gets an online meeting.
type Appointment struct {
	// ID is the host calendar's id of the appointment. Required.
	ID string
	// Subject becomes the meeting's title.
	Subject string
	// Start and End bound the (first) occurrence; both zero for none.
	Start, End time.Time
	// RRule and TimeZone repeat it, as in Schedule.
	RRule    string
	TimeZone string
}

// CreateForAppointment makes the online meeting of a calendar
// appointment, titled with its Subject and scheduled like it, with the
// calendar defaults: guests allowed, no password, organizer-only uploads.
// It returns the meeting, its link, and an invitation text to put in the
// appointment sent to attendees.
//
// Calling it again for the same organizer and appointment returns the
// same meeting, with its title and schedule brought up to date (an
// edited appointment). When the appointment is later cancelled or
// deleted, the nightly sweep (RunSweeper) deletes the meeting.
func (s *Service) CreateForAppointment(ctx context.Context, organizer jid.JID, a Appointment) (Meeting, string, string, error) {
	if strings.TrimSpace(a.ID) == "" {
		return Meeting{}, "", "", fmt.Errorf("%w: the appointment id is required", ErrBadRequest)
	}
	title := strings.TrimSpace(a.Subject)
	if title == "" {
		title = "Online meeting"
	}
	c := Change{Title: &title}
	if !a.Start.IsZero() || !a.End.IsZero() {
		c.Schedule = &Schedule{Start: a.Start, End: a.End, TimeZone: a.TimeZone, RRule: a.RRule}
	} else {
		c.ClearSchedule = true
	}
	var m Meeting
	existing, err := s.forAppointment(ctx, organizer, a.ID)
	switch {
	case err == nil && !existing.Archived:
		m, err = s.Update(ctx, organizer, existing.ID, c)
	case err == nil:
		m = s.fromStored(existing)
	case errors.Is(err, ErrNotFound):
		yes := true
		uploads := UploadsOrganizer
		c.AllowGuests, c.Uploads = &yes, &uploads
		m, err = s.create(ctx, organizer, c, a.ID)
	}
	if err != nil {
		return Meeting{}, "", "", err
	}
	return m, m.Link, s.invitation(m), nil
}

func (s *Service) forAppointment(ctx context.Context, organizer jid.JID, id string) (storage.Meeting, error) {
	sts, err := s.store.OrganizerMeetings(ctx, organizer.Address())
	if err != nil {
		return storage.Meeting{}, s.storeErr(err)
	}
	for _, st := range sts {
		if st.AppointmentID == id {
			st, _, err := s.settle(ctx, st)
			return st, err
		}
	}
	return storage.Meeting{}, ErrNotFound
}

func (s *Service) invitation(m Meeting) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Online meeting: %s\n", m.Title)
	fmt.Fprintf(&b, "Join from your browser: %s\n", m.Link)
	if m.AllowGuests {
		b.WriteString("No account is needed: open the link and enter your name.\n")
	}
	if m.HasPassword {
		b.WriteString("The meeting is protected by a password, which the organizer will give you.\n")
	}
	return b.String()
}

// StartWithContact makes a meeting from a chat with contact: a room
// anyone with the link can join at once or later (guests allowed, no
// password, no lobby, no schedule), titled roomName or "Meeting with"
// and the contact's name. It returns the meeting, its link, and the
// message to post in the chat. The meeting appears in the contact's
// participated meetings. It is StartFromChat without a call.
func (s *Service) StartWithContact(ctx context.Context, organizer, contact jid.JID, roomName string) (Meeting, string, string, error) {
	st, err := s.StartFromChat(ctx, organizer, contact, ChatStart{Room: roomName})
	return st.Meeting, st.Link, st.Message, err
}

// CallMedia is what a call started from a chat carries.
type CallMedia string

const (
	// AudioCall: the room is joined with the microphone only.
	AudioCall CallMedia = "audio"
	// VideoCall: the room is joined with camera and microphone.
	VideoCall CallMedia = "video"
)

// ChatStart is what StartFromChat starts.
type ChatStart struct {
	// Room is the meeting's title. Default: "Meeting with <contact>",
	// or for a call "Audio call: <organizer> and <contact>" (or "Video
	// call: ..."), with the directory names (Config.DisplayName).
	Room string
	// Call makes it a 1:1 call of that media: a small room of the same
	// kind, which anyone with the link may join too. Empty: a meeting.
	Call CallMedia
}

// Started is what StartFromChat made.
type Started struct {
	Meeting Meeting
	// Link is what to post in the chat: the meeting link, which for an
	// audio call carries ?media=audio so the room joins without camera.
	Link string
	// Message is the chat message to post; it holds Link.
	Message string
	// Call is the call's media, empty for a meeting.
	Call CallMedia
}

// StartFromChat makes a meeting, or a 1:1 call, from a chat between
// organizer and contact: a room of organizer's that anyone with the link
// can join at once or later (guests allowed, no password, no lobby, no
// schedule). The meeting appears in the contact's participated meetings.
// The message names people by their directory names.
func (s *Service) StartFromChat(ctx context.Context, organizer, contact jid.JID, st ChatStart) (Started, error) {
	if st.Call != "" && st.Call != AudioCall && st.Call != VideoCall {
		return Started{}, fmt.Errorf("%w: call must be %q or %q, not %q", ErrBadRequest, AudioCall, VideoCall, st.Call)
	}
	if contact.IsZero() || contact.Local() == "" {
		return Started{}, fmt.Errorf("%w: the contact must be an address (user@domain)", ErrBadRequest)
	}
	from, to := s.displayName(ctx, organizer), s.displayName(ctx, contact)
	title := strings.TrimSpace(st.Room)
	what, kind := "a video meeting", ""
	switch st.Call {
	case AudioCall:
		what, kind = "an audio call", "Audio call"
	case VideoCall:
		what, kind = "a video call", "Video call"
	}
	if title == "" {
		if st.Call == "" {
			title = "Meeting with " + to
		} else {
			title = kind + ": " + from + " and " + to
		}
	}
	yes, keep := true, EndKeepActive
	m, err := s.Create(ctx, organizer, Change{Title: &title, AllowGuests: &yes, AttendeesCanStart: &yes, EndBehaviour: &keep})
	if err != nil {
		return Started{}, err
	}
	s.recordParticipation(ctx, contact.Address(), m.ID, true)
	link := m.Link
	if st.Call == AudioCall {
		link += "?media=audio"
	}
	var msg string
	if st.Call == "" {
		msg = fmt.Sprintf("%s started %s: %s\nJoin: %s", from, what, m.Title, link)
	} else {
		msg = fmt.Sprintf("%s started %s.\nJoin: %s", from, what, link)
	}
	return Started{Meeting: m, Link: link, Message: msg, Call: st.Call}, nil
}

// displayName is user's name in the host directory, or the address.
func (s *Service) displayName(ctx context.Context, user jid.JID) string {
	if s.cfg.DisplayName != nil {
		if n := strings.TrimSpace(s.cfg.DisplayName(ctx, user)); n != "" {
			return n
		}
	}
	return user.Address()
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	Checked  int // meetings looked at
	Deleted  int // deleted: appointment gone, or schedule ended with EndDelete
	Archived int // archived: schedule ended with EndArchive
	Errors   int // meetings skipped because the calendar or store failed
}

// Sweep runs the nightly routine once: it deletes the meetings whose
// appointment was cancelled or deleted (asking Config.Appointments), and
// applies the end behaviour of every schedule that has ended; it also
// forgets live rooms nobody has used since their credentials expired.
// RunSweeper
// calls it at Config.SweepAt each day; hosts and tests may call it
// whenever they like.
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	s.pruneRooms()
	after := ""
	for {
		page, err := s.store.ListMeetings(ctx, after, 100)
		if err != nil {
			return res, s.storeErr(err)
		}
		if len(page) == 0 {
			return res, nil
		}
		after = page[len(page)-1].ID
		for _, st := range page {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			res.Checked++
			if st.AppointmentID != "" && s.cfg.Appointments != nil {
				org, _ := jid.Parse(st.Organizer)
				ok, err := s.cfg.Appointments.AppointmentExists(ctx, org, st.AppointmentID)
				if err != nil {
					s.log.Warn("sweep: asking the calendar", "meeting", st.ID, "appointment", st.AppointmentID, "err", err)
					res.Errors++
					continue
				}
				if !ok {
					if err := s.deleteStored(ctx, st, "the appointment was cancelled"); err != nil && !errors.Is(err, ErrNotFound) {
						res.Errors++
					} else {
						res.Deleted++
					}
					continue
				}
			}
			_, did, err := s.settle(ctx, st)
			switch {
			case did == EndDelete:
				res.Deleted++
			case did == EndArchive:
				res.Archived++
			case err != nil:
				res.Errors++
			}
		}
	}
}

// nextSweep is the first SweepAt strictly after now.
func (s *Service) nextSweep(now time.Time) time.Time {
	local := now.In(s.cfg.Location)
	y, mo, d := local.Date()
	h := int(s.cfg.SweepAt / time.Hour)
	mi := int(s.cfg.SweepAt % time.Hour / time.Minute)
	next := time.Date(y, mo, d, h, mi, 0, 0, s.cfg.Location)
	if !next.After(now) {
		next = time.Date(y, mo, d+1, h, mi, 0, 0, s.cfg.Location)
	}
	return next
}

// RunSweeper sweeps every day at Config.SweepAt until ctx ends, then
// returns ctx's error. Run it in its own goroutine.
func (s *Service) RunSweeper(ctx context.Context) error {
	for {
		now := s.now()
		wait := s.nextSweep(now).Sub(now)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.clock.After(wait):
		}
		res, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("sweep failed", "err", err)
		}
		s.log.Info("sweep", "checked", res.Checked, "deleted", res.Deleted, "archived", res.Archived, "errors", res.Errors)
	}
}
