package meeting

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// AppointmentChecker is the host calendar, asked by the nightly sweep
// whether the appointment a meeting was created for still exists.
type AppointmentChecker interface {
	// AppointmentExists reports whether organizer's appointment id
	// exists and is not cancelled. An error skips the meeting until the
	// next sweep; it is never taken as "deleted".
	AppointmentExists(ctx context.Context, organizer jid.JID, id string) (bool, error)
}

// Clock tells the time; tests give a fake one.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	// Store keeps meetings, chat, file records, participations and
	// device preferences. Required.
	Store storage.Meetings
	// Files keeps the bytes of shared files. Nil turns file sharing off
	// (uploads fail with ErrFilesDisabled).
	Files FileStore
	// CheckFileName is the host's system-wide file policy (the extension
	// blacklist); a non-nil error refuses the file with ErrFileBlocked
	// and the error's text. Nil allows every name.
	CheckFileName func(name string) error
	// MaxFileSize is the largest file shared in a meeting; default 100 MiB.
	MaxFileSize int64

	// LinkBase is what a meeting link starts with; the token follows.
	// Default "/meetings/j/", relative to where Handler is mounted; a host
	// sets its absolute URL ("https://mail.example.com/parley/meetings/j/")
	// so that links work in invitations.
	LinkBase string
	// Identify tells the logged-in user of an HTTP request (the host's
	// webmail session). Nil means nobody is logged in: only guests.
	Identify func(r *http.Request) (jid.JID, bool)
	// DisplayName tells the name people see for a user (the host
	// directory's), for the titles and chat messages of meetings and
	// calls started from a chat. Nil, or "", shows the address.
	DisplayName func(ctx context.Context, user jid.JID) string
	// ClientAddr tells the client address of a request, for throttling
	// wrong passwords. Default: the host part of r.RemoteAddr. Behind a
	// proxy, give one that reads the proxy's header.
	ClientAddr func(r *http.Request) string
	// Secret signs guest cookies. Nil means a random key made by New:
	// guests then get a new identity when the process restarts. Give a
	// stable secret of 32 bytes or more to keep them.
	Secret []byte
	// GuestCookie is the guest cookie's name; default "parley_guest".
	GuestCookie string
	// GuestTTL is how long a guest cookie lasts; default 30 days.
	GuestTTL time.Duration
	// SecureCookies sets Secure on the guest cookie even when the request
	// did not arrive over TLS (a TLS-terminating proxy in front).
	SecureCookies bool
	// OriginPatterns are extra origins allowed to open the meeting
	// WebSocket (see websocket.AcceptOptions); by default only the
	// page's own origin may.
	OriginPatterns []string
	// Pages are the meeting web pages served by Handler; default the
	// ones embedded in package web.
	Pages fs.FS

	// Appointments answers the sweep; nil skips the appointment check.
	Appointments AppointmentChecker
	// SweepAt is the time of day, after midnight in Location, when
	// RunSweeper sweeps; default 3h (03:00).
	SweepAt time.Duration
	// Location is where SweepAt is; default time.Local.
	Location *time.Location
	// Clock is the time source; default the system clock.
	Clock Clock

	// PasswordFailures is how many wrong passwords a meeting takes in
	// PasswordWindow, from all addresses together, before it refuses
	// every attempt until the window ends; default 20.
	PasswordFailures int
	// PasswordFailuresPerAddr is the same for one client address across
	// all meetings; default 5.
	PasswordFailuresPerAddr int
	// PasswordWindow: default 15 minutes.
	PasswordWindow time.Duration

	// QueueLength is how many events wait for one slow participant
	// connection before it is dropped; default 256.
	QueueLength int
	// RejoinGrace is how long a participant's credential outlives its
	// last connection, so that a reload or a network blip does not send
	// them back to the lobby; default 2 minutes.
	RejoinGrace time.Duration
	// MaxChatLength is the longest chat message in characters; default
	// 4000.
	MaxChatLength int

	// Logger receives the Service's logs; nil discards them.
	Logger *slog.Logger
}

// Service runs meetings: their settings, links, roles, lobby, chat,
// files, schedules and live rooms. Its methods are safe for concurrent
// use; two Services can share a process (not a Store's meetings, whose
// live rooms each Service keeps in its own memory).
type Service struct {
	cfg       Config
	store     storage.Meetings
	clock     Clock
	log       *slog.Logger
	pwMeeting *throttle
	pwAddr    *throttle
	handler   http.Handler

	mu     sync.Mutex
	rooms  map[string]*room
	creds  map[string]*participant
	closed bool
}

// New validates cfg and returns a Service. It starts no goroutine: run
// RunSweeper for the nightly sweep and mount Handler for the web API.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("meeting: Config.Store is nil")
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = 100 << 20
	}
	if cfg.LinkBase == "" {
		cfg.LinkBase = "/meetings/j/"
	}
	if cfg.ClientAddr == nil {
		cfg.ClientAddr = remoteHost
	}
	if cfg.Secret == nil {
		cfg.Secret = []byte(newToken(32))
	} else if len(cfg.Secret) < 16 {
		return nil, errors.New("meeting: Config.Secret is shorter than 16 bytes")
	}
	if cfg.GuestCookie == "" {
		cfg.GuestCookie = "parley_guest"
	}
	if cfg.GuestTTL <= 0 {
		cfg.GuestTTL = 30 * 24 * time.Hour
	}
	if cfg.SweepAt <= 0 || cfg.SweepAt >= 24*time.Hour {
		cfg.SweepAt = 3 * time.Hour
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.PasswordFailures <= 0 {
		cfg.PasswordFailures = 20
	}
	if cfg.PasswordFailuresPerAddr <= 0 {
		cfg.PasswordFailuresPerAddr = 5
	}
	if cfg.PasswordWindow <= 0 {
		cfg.PasswordWindow = 15 * time.Minute
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = 256
	}
	if cfg.RejoinGrace <= 0 {
		cfg.RejoinGrace = 2 * time.Minute
	}
	if cfg.MaxChatLength <= 0 {
		cfg.MaxChatLength = 4000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:       cfg,
		store:     cfg.Store,
		clock:     cfg.Clock,
		log:       log,
		pwMeeting: newThrottle(cfg.PasswordFailures, cfg.PasswordWindow),
		pwAddr:    newThrottle(cfg.PasswordFailuresPerAddr, cfg.PasswordWindow),
		rooms:     make(map[string]*room),
		creds:     make(map[string]*participant),
	}
	h, err := s.newHandler()
	if err != nil {
		return nil, err
	}
	s.handler = h
	return s, nil
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Service) now() time.Time { return s.clock.Now() }

// Close ends every live room: connections are closed with "shutdown".
// Stored meetings are untouched. Later joins fail with ErrClosed.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.rooms = make(map[string]*room)
	s.creds = make(map[string]*participant)
	s.mu.Unlock()
	for _, r := range rooms {
		r.lock()
		r.endLocked("the server is shutting down")
		r.unlock()
	}
	return nil
}

// --- conversions and validation ---

func (s *Service) link(token string) string { return s.cfg.LinkBase + token }

func settingsOf(st storage.Meeting) Settings {
	set := Settings{
		Title:             st.Title,
		AllowGuests:       st.AllowGuests,
		AttendeesCanStart: st.AttendeesCanStart,
		Uploads:           Uploads(st.Uploads),
		Lobby:             st.Lobby,
		Recording:         st.Recording,
		EndBehaviour:      EndBehaviour(st.EndBehaviour),
	}
	if st.Scheduled {
		set.Schedule = &Schedule{Start: st.ScheduleStart, End: st.ScheduleEnd, TimeZone: st.TimeZone, RRule: st.RRule}
	}
	return set
}

func (s *Service) fromStored(st storage.Meeting) Meeting {
	org, _ := jid.Parse(st.Organizer)
	return Meeting{
		ID:            st.ID,
		Organizer:     org,
		Created:       st.Created,
		Version:       st.Version,
		Token:         st.Token,
		Link:          s.link(st.Token),
		Settings:      settingsOf(st),
		HasPassword:   st.PasswordHash != "",
		Archived:      st.Archived,
		AppointmentID: st.AppointmentID,
		Moderators:    slices.Clone(st.Moderators),
	}
}

const maxTitle = 200

// apply applies c to st, hashing a new password with hash. It validates
// the result.
func (s *Service) apply(st *storage.Meeting, c Change, hash string) error {
	if c.Title != nil {
		st.Title = strings.TrimSpace(*c.Title)
	}
	if st.Title == "" {
		return ErrTitleRequired
	}
	if utf8.RuneCountInString(st.Title) > maxTitle {
		return fmt.Errorf("%w: the title is longer than %d characters", ErrBadRequest, maxTitle)
	}
	if c.Password != nil {
		st.PasswordHash = hash
	}
	set := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(&st.AllowGuests, c.AllowGuests)
	set(&st.AttendeesCanStart, c.AttendeesCanStart)
	set(&st.Lobby, c.Lobby)
	set(&st.Recording, c.Recording)
	if c.Uploads != nil {
		if *c.Uploads > UploadsAnyone {
			return fmt.Errorf("%w: unknown upload permission %d", ErrBadRequest, *c.Uploads)
		}
		st.Uploads = uint8(*c.Uploads)
	}
	if c.EndBehaviour != nil {
		if *c.EndBehaviour > EndKeepActive {
			return fmt.Errorf("%w: unknown end behaviour %d", ErrBadRequest, *c.EndBehaviour)
		}
		st.EndBehaviour = uint8(*c.EndBehaviour)
	}
	switch {
	case c.ClearSchedule:
		st.Scheduled = false
		st.ScheduleStart, st.ScheduleEnd, st.TimeZone, st.RRule = time.Time{}, time.Time{}, "", ""
	case c.Schedule != nil:
		sc := *c.Schedule
		if err := sc.Validate(); err != nil {
			return err
		}
		if EndBehaviour(st.EndBehaviour) != EndKeepActive && sc.ended(s.now()) {
			return fmt.Errorf("%w: the schedule has already ended", ErrBadSchedule)
		}
		st.Scheduled = true
		st.ScheduleStart, st.ScheduleEnd, st.TimeZone, st.RRule = sc.Start, sc.End, sc.TimeZone, strings.TrimSpace(sc.RRule)
	}
	return nil
}

func hashFor(c Change) string {
	if c.Password == nil || *c.Password == "" {
		return ""
	}
	return hashPassword(*c.Password)
}

// --- meetings ---

// Create makes a meeting owned by organizer. c.Title is required; the
// other fields default to: no password, no guests, attendees may start
// the meeting, organizer-only uploads, no lobby, no recording, no
// schedule, archive at the end of the schedule.
func (s *Service) Create(ctx context.Context, organizer jid.JID, c Change) (Meeting, error) {
	return s.create(ctx, organizer, c, "")
}

func (s *Service) create(ctx context.Context, organizer jid.JID, c Change, appointment string) (Meeting, error) {
	if organizer.IsZero() || organizer.Local() == "" {
		return Meeting{}, fmt.Errorf("%w: only a logged-in user can organize a meeting", ErrNotAllowed)
	}
	st := storage.Meeting{
		ID:                uuid.NewString(),
		Organizer:         organizer.Address(),
		Created:           s.now(),
		AttendeesCanStart: true,
		Uploads:           uint8(UploadsOrganizer),
		EndBehaviour:      uint8(EndArchive),
		AppointmentID:     appointment,
	}
	if err := s.apply(&st, c, hashFor(c)); err != nil {
		return Meeting{}, err
	}
	for range 3 {
		st.Token = newToken(linkTokenBytes)
		err := s.store.CreateMeeting(ctx, st)
		if errors.Is(err, storage.ErrMeetingConflict) {
			continue // a token collision: 144 random bits make it theoretical
		}
		if err != nil {
			return Meeting{}, fmt.Errorf("meeting: storing: %w", err)
		}
		st.Version = 1
		return s.fromStored(st), nil
	}
	return Meeting{}, errors.New("meeting: could not allocate a unique link token")
}

// load returns a stored meeting after applying its end behaviour if its
// schedule is over (archiving it, or deleting it and returning
// ErrNotFound).
func (s *Service) load(ctx context.Context, id string) (storage.Meeting, error) {
	st, err := s.store.Meeting(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return st, ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("meeting: %w", err)
	}
	st, _, err = s.settle(ctx, st)
	return st, err
}

func (s *Service) loadToken(ctx context.Context, token string) (storage.Meeting, error) {
	if token == "" {
		return storage.Meeting{}, ErrNotFound
	}
	st, err := s.store.MeetingByToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return st, ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("meeting: %w", err)
	}
	st, _, err = s.settle(ctx, st)
	return st, err
}

// settle applies the end behaviour of an ended schedule. It reports
// what it did: EndArchive, EndDelete, or EndKeepActive for nothing.
func (s *Service) settle(ctx context.Context, st storage.Meeting) (storage.Meeting, EndBehaviour, error) {
	for range 3 {
		if !st.Scheduled || st.Archived {
			return st, EndKeepActive, nil
		}
		sc := settingsOf(st).Schedule
		end := EndBehaviour(st.EndBehaviour)
		if end == EndKeepActive || !sc.ended(s.now()) {
			return st, EndKeepActive, nil
		}
		if end == EndDelete {
			if err := s.deleteStored(ctx, st, "the meeting's schedule ended"); err != nil && !errors.Is(err, ErrNotFound) {
				return st, EndKeepActive, err
			}
			return st, EndDelete, ErrNotFound
		}
		st.Archived = true
		ver, err := s.store.UpdateMeeting(ctx, st)
		if errors.Is(err, storage.ErrMeetingConflict) {
			// Changed meanwhile: look again at the new version.
			if st, err = s.store.Meeting(ctx, st.ID); err != nil {
				return st, EndKeepActive, s.storeErr(err)
			}
			continue
		}
		if err != nil {
			return st, EndKeepActive, s.storeErr(err)
		}
		st.Version = ver
		s.live(st)
		return st, EndArchive, nil
	}
	return st, EndKeepActive, fmt.Errorf("meeting: %s keeps changing", st.ID)
}

func (s *Service) storeErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	return fmt.Errorf("meeting: %w", err)
}

// Meeting returns the meeting with id, without any permission check: it
// is for the host's own use.
func (s *Service) Meeting(ctx context.Context, id string) (Meeting, error) {
	st, err := s.load(ctx, id)
	if err != nil {
		return Meeting{}, err
	}
	return s.fromStored(st), nil
}

// ByToken returns the meeting a link token opens, without any permission
// check.
func (s *Service) ByToken(ctx context.Context, token string) (Meeting, error) {
	st, err := s.loadToken(ctx, token)
	if err != nil {
		return Meeting{}, err
	}
	return s.fromStored(st), nil
}

// Update changes the settings of a meeting; only its organizer may, and
// not once it is archived. The change reaches everyone in the meeting at
// once: a lobby turned off admits its waiters, guests disallowed are
// removed, and every connection gets the new settings.
func (s *Service) Update(ctx context.Context, user jid.JID, id string, c Change) (Meeting, error) {
	hash := hashFor(c)
	return s.modify(ctx, id, func(st *storage.Meeting) error {
		if st.Organizer != user.Address() || user.IsZero() {
			return fmt.Errorf("%w: only the organizer changes the settings", ErrNotAllowed)
		}
		if st.Archived {
			return ErrArchived
		}
		return s.apply(st, c, hash)
	})
}

// modify runs fn on the current stored meeting and stores the result,
// again from the new version if someone else wrote in between; then
// brings the live room up to date.
func (s *Service) modify(ctx context.Context, id string, fn func(*storage.Meeting) error) (Meeting, error) {
	for range 5 {
		st, err := s.load(ctx, id)
		if err != nil {
			return Meeting{}, err
		}
		if err := fn(&st); err != nil {
			return Meeting{}, err
		}
		ver, err := s.store.UpdateMeeting(ctx, st)
		if errors.Is(err, storage.ErrMeetingConflict) {
			continue
		}
		if err != nil {
			return Meeting{}, s.storeErr(err)
		}
		st.Version = ver
		s.live(st)
		return s.fromStored(st), nil
	}
	return Meeting{}, fmt.Errorf("meeting: %s changed too often to update; try again", id)
}

// live hands a new version of a meeting to its room, if it has one.
func (s *Service) live(st storage.Meeting) {
	s.mu.Lock()
	r := s.rooms[st.ID]
	s.mu.Unlock()
	if r != nil {
		r.lock()
		r.applyLocked(st)
		r.unlock()
	}
}

// Delete deletes a meeting with its chat and files; only its organizer
// may. Everyone in it is removed.
func (s *Service) Delete(ctx context.Context, user jid.JID, id string) error {
	st, err := s.store.Meeting(ctx, id)
	if err != nil {
		return s.storeErr(err)
	}
	if st.Organizer != user.Address() || user.IsZero() {
		return fmt.Errorf("%w: only the organizer deletes a meeting", ErrNotAllowed)
	}
	return s.deleteStored(ctx, st, "the organizer deleted the meeting")
}

func (s *Service) deleteStored(ctx context.Context, st storage.Meeting, why string) error {
	files, err := s.store.MeetingFiles(ctx, st.ID)
	if err != nil {
		return s.storeErr(err)
	}
	if err := s.store.DeleteMeeting(ctx, st.ID); err != nil {
		return s.storeErr(err)
	}
	// The records are gone first: a file whose bytes cannot be deleted
	// is an orphan to collect, never a record pointing at nothing.
	if s.cfg.Files != nil {
		for _, f := range files {
			if err := s.cfg.Files.Delete(ctx, f.Ref); err != nil {
				s.log.Warn("deleting a meeting file", "meeting", st.ID, "ref", f.Ref, "err", err)
			}
		}
	}
	s.mu.Lock()
	r := s.rooms[st.ID]
	delete(s.rooms, st.ID)
	s.mu.Unlock()
	if r != nil {
		r.lock()
		r.endLocked(why)
		r.unlock()
	}
	return nil
}

// Mine returns the meetings user organizes, oldest first ("my
// meetings"), archived ones included.
func (s *Service) Mine(ctx context.Context, user jid.JID) ([]Meeting, error) {
	sts, err := s.store.OrganizerMeetings(ctx, user.Address())
	if err != nil {
		return nil, s.storeErr(err)
	}
	out := make([]Meeting, 0, len(sts))
	for _, st := range sts {
		st, _, err := s.settle(ctx, st)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s.fromStored(st))
	}
	return out, nil
}

// Participated returns the meetings of others that user took part in or
// was invited to, most recent first. They are read-only for user: the
// chat and files can be seen and the meeting rejoined by its link.
func (s *Service) Participated(ctx context.Context, user jid.JID) ([]Participated, error) {
	ps, err := s.store.Participations(ctx, user.Address())
	if err != nil {
		return nil, s.storeErr(err)
	}
	out := make([]Participated, 0, len(ps))
	for _, p := range ps {
		st, err := s.load(ctx, p.MeetingID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if st.Organizer == user.Address() {
			continue
		}
		out = append(out, Participated{Meeting: s.fromStored(st), First: p.First, Last: p.Last, Invited: p.Invited})
	}
	slices.SortStableFunc(out, func(a, b Participated) int {
		return b.Last.Compare(a.Last)
	})
	return out, nil
}

func (s *Service) recordParticipation(ctx context.Context, user, meetingID string, invited bool) {
	now := s.now()
	p, err := s.store.Participation(ctx, user, meetingID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.Warn("reading a participation", "user", user, "meeting", meetingID, "err", err)
		return
	}
	p.User, p.MeetingID = user, meetingID
	if invited {
		p.Invited = true
	} else {
		if p.First.IsZero() {
			p.First = now
		}
		p.Last = now
	}
	if err := s.store.PutParticipation(ctx, p); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.Warn("recording a participation", "user", user, "meeting", meetingID, "err", err)
	}
}

// --- device preferences ---

var qualities = []string{"low", "medium", "high"}

// Prefs returns user's device preferences; a user who never saved any
// gets the defaults (browser default devices, low webcam quality).
func (s *Service) Prefs(ctx context.Context, user jid.JID) (DevicePrefs, error) {
	p, err := s.store.DevicePrefs(ctx, user.Address())
	if errors.Is(err, storage.ErrNotFound) {
		return DevicePrefs{WebcamQuality: "low"}, nil
	}
	if err != nil {
		return DevicePrefs{}, s.storeErr(err)
	}
	if p.WebcamQuality == "" {
		p.WebcamQuality = "low"
	}
	return DevicePrefs(p), nil
}

// SetPrefs stores user's device preferences. An empty WebcamQuality
// means "low".
func (s *Service) SetPrefs(ctx context.Context, user jid.JID, p DevicePrefs) error {
	if user.IsZero() {
		return ErrNotAllowed
	}
	if p.WebcamQuality == "" {
		p.WebcamQuality = "low"
	}
	if !slices.Contains(qualities, p.WebcamQuality) {
		return fmt.Errorf("%w: webcam quality must be one of %q", ErrBadRequest, qualities)
	}
	for _, v := range []string{p.Microphone, p.Camera, p.Speakers} {
		if len(v) > 512 {
			return fmt.Errorf("%w: device id too long", ErrBadRequest)
		}
	}
	if err := s.store.PutDevicePrefs(ctx, user.Address(), storage.DevicePrefs(p)); err != nil {
		return s.storeErr(err)
	}
	return nil
}
