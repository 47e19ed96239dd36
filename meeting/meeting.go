package meeting

import (
	"errors"
	"fmt"
	"time"

	"github.com/parleyhq/parley/jid"
)

// Errors the Service returns, checked with errors.Is. The HTTP API turns
// each into a JSON error with a stable code (in brackets).
var (
	// ErrNotFound: no meeting has that id or link token [not_found].
	ErrNotFound = errors.New("meeting: no such meeting")
	// ErrTitleRequired: a meeting needs a title [title_required].
	ErrTitleRequired = errors.New("meeting: a title is required")
	// ErrBadSchedule: the schedule is incomplete or inconsistent
	// [bad_schedule].
	ErrBadSchedule = errors.New("meeting: bad schedule")
	// ErrBadRRule: the recurrence rule does not parse or is not allowed
	// [bad_rrule].
	ErrBadRRule = errors.New("meeting: bad recurrence rule")
	// ErrBadRequest: some other input is invalid [bad_request].
	ErrBadRequest = errors.New("meeting: bad request")
	// ErrWrongPassword: the meeting password is wrong [wrong_password].
	ErrWrongPassword = errors.New("meeting: wrong password")
	// ErrThrottled: too many wrong passwords; wait and retry [throttled].
	ErrThrottled = errors.New("meeting: too many wrong passwords, try again later")
	// ErrLoginRequired: the meeting does not allow guests [login_required].
	ErrLoginRequired = errors.New("meeting: this meeting does not allow guests; log in to join")
	// ErrNameRequired: a guest must give a name [name_required].
	ErrNameRequired = errors.New("meeting: guests must give a name")
	// ErrNotAllowed: the caller's role does not allow this [not_allowed].
	ErrNotAllowed = errors.New("meeting: not allowed")
	// ErrNotAdmitted: the participant is waiting in the lobby or for the
	// organizer [not_admitted].
	ErrNotAdmitted = errors.New("meeting: not admitted to the meeting yet")
	// ErrBadCredential: the participant credential is unknown, expired or
	// was revoked (removed, denied) [bad_credential].
	ErrBadCredential = errors.New("meeting: unknown or expired participant credential")
	// ErrArchived: the meeting is archived and read-only [archived].
	ErrArchived = errors.New("meeting: the meeting is archived and read-only")
	// ErrFileBlocked: the host's extension blacklist refuses the file
	// name [file_blocked].
	ErrFileBlocked = errors.New("meeting: this type of file may not be shared")
	// ErrFileTooLarge: the file is over Config.MaxFileSize
	// [file_too_large].
	ErrFileTooLarge = errors.New("meeting: file too large")
	// ErrFilesDisabled: no FileStore is configured [files_disabled].
	ErrFilesDisabled = errors.New("meeting: file sharing is not available")
	// ErrClosed: the Service was closed [closed].
	ErrClosed = errors.New("meeting: service closed")
)

// throttledError carries how long to wait; it is ErrThrottled.
type throttledError struct{ after time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("%v (retry in %v)", ErrThrottled, e.after.Round(time.Second))
}
func (e *throttledError) Unwrap() error { return ErrThrottled }

// Uploads says who may share files in a meeting.
type Uploads uint8

const (
	// UploadsOrganizer: only the organizer (the default).
	UploadsOrganizer Uploads = iota
	// UploadsAuthenticated: any logged-in user, not guests.
	UploadsAuthenticated
	// UploadsAnyone: every participant, guests included.
	UploadsAnyone
)

var uploadsNames = []string{"organizer", "authenticated", "anyone"}

func (u Uploads) String() string { return enumString(uploadsNames, int(u)) }

// MarshalText gives "organizer", "authenticated" or "anyone".
func (u Uploads) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (u *Uploads) UnmarshalText(b []byte) error {
	i, err := enumParse("uploads", uploadsNames, string(b))
	*u = Uploads(i)
	return err
}

// EndBehaviour says what happens to a meeting when its schedule ends.
type EndBehaviour uint8

const (
	// EndArchive ends the meeting and keeps it listed, read-only, with
	// its chat and files (the default).
	EndArchive EndBehaviour = iota
	// EndDelete deletes the meeting with its chat and files.
	EndDelete
	// EndKeepActive keeps the meeting usable as if it had no schedule.
	EndKeepActive
)

var endNames = []string{"archive", "delete", "keep"}

func (e EndBehaviour) String() string { return enumString(endNames, int(e)) }

// MarshalText gives "archive", "delete" or "keep".
func (e EndBehaviour) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (e *EndBehaviour) UnmarshalText(b []byte) error {
	i, err := enumParse("end behaviour", endNames, string(b))
	*e = EndBehaviour(i)
	return err
}

// Role is what a participant may do; a higher Role may do all a lower
// one may.
type Role uint8

const (
	// RoleGuest joined by link without logging in.
	RoleGuest Role = iota
	// RoleAttendee is a logged-in user.
	RoleAttendee
	// RoleModerator admits and denies lobby waiters, mutes and removes
	// participants, grants moderator rights and deletes the chat.
	RoleModerator
	// RoleOrganizer owns the meeting and alone changes its settings.
	RoleOrganizer
)

var roleNames = []string{"guest", "attendee", "moderator", "organizer"}

func (r Role) String() string { return enumString(roleNames, int(r)) }

// MarshalText gives the lower-case name.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// State is where a participant is.
type State uint8

const (
	// Waiting: the meeting has not started and attendees may not start
	// it; the participant waits for the organizer.
	Waiting State = iota
	// Lobby: the participant waits for a moderator to admit them.
	Lobby
	// In: the participant is in the meeting.
	In
	// Denied: a moderator turned the participant away from the lobby.
	Denied
	// Removed: a moderator removed the participant, or the meeting
	// ended or stopped allowing guests.
	Removed
)

var stateNames = []string{"waiting", "lobby", "in", "denied", "removed"}

func (s State) String() string { return enumString(stateNames, int(s)) }

// MarshalText gives the lower-case name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func enumString(names []string, i int) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("unknown(%d)", i)
}

func enumParse(what string, names []string, s string) (int, error) {
	for i, n := range names {
		if n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %s %q is not one of %q", ErrBadRequest, what, s, names)
}

// Schedule is when a meeting takes place: one occurrence from Start to
// End, repeated by RRule in TimeZone.
type Schedule struct {
	// Start and End bound the first occurrence; End is after Start.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// TimeZone is the IANA zone the recurrence follows (so a weekly
	// 9:00 stays 9:00 across daylight-saving changes). Empty means UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// RRule is an RFC 5545 recurrence rule without DTSTART, such as
	// "FREQ=WEEKLY;BYDAY=MO;COUNT=10"; empty for a one-off. FREQ must be
	// DAILY, WEEKLY, MONTHLY or YEARLY.
	RRule string `json:"rrule,omitempty"`
}

// Settings are what the organizer sets. The zero Settings are not the
// defaults: see Create.
type Settings struct {
	Title string `json:"title"`
	// AllowGuests lets anyone with the link join without logging in.
	AllowGuests bool `json:"allowGuests"`
	// AttendeesCanStart lets attendees open the meeting before the
	// organizer arrives; otherwise they wait for the organizer.
	AttendeesCanStart bool    `json:"attendeesCanStart"`
	Uploads           Uploads `json:"uploads"`
	// Lobby makes everyone but the organizer and moderators wait for a
	// moderator to admit them.
	Lobby bool `json:"lobby"`
	// Recording allows recording the meeting (the media layer enforces).
	Recording bool `json:"recording"`
	// Schedule is nil for an unscheduled meeting.
	Schedule     *Schedule    `json:"schedule,omitempty"`
	EndBehaviour EndBehaviour `json:"endBehaviour"`
}

// Meeting is a meeting room and its settings, as the organizer sees it.
type Meeting struct {
	ID        string
	Organizer jid.JID
	Created   time.Time
	// Version grows with every change of the settings.
	Version uint64
	// Token is the secret of the meeting link; Link the link itself
	// (Config.LinkBase + Token).
	Token string
	Link  string
	Settings
	// HasPassword: joining needs the meeting password.
	HasPassword bool
	// Archived: the schedule ended and the meeting is read-only.
	Archived bool
	// AppointmentID links a meeting made by CreateForAppointment to its
	// appointment.
	AppointmentID string
	// Moderators are the identity keys (see Participant.Identity) granted
	// moderator rights.
	Moderators []string
}

// Change is a change of settings: nil fields are left as they are.
type Change struct {
	Title *string
	// Password sets the password; a pointer to "" removes it.
	Password          *string
	AllowGuests       *bool
	AttendeesCanStart *bool
	Uploads           *Uploads
	Lobby             *bool
	Recording         *bool
	// Schedule sets the schedule; ClearSchedule removes it.
	Schedule      *Schedule
	ClearSchedule bool
	EndBehaviour  *EndBehaviour
}

// Participant is one person in (or waiting for) a meeting.
type Participant struct {
	// ID names this participation (one join); it is not secret.
	ID        string
	MeetingID string
	Name      string
	Role      Role
	// User is the logged-in user, zero for a guest.
	User jid.JID
	// Identity is stable across joins: "u:" and the bare address for a
	// user, "g:" and the guest id (from the guest cookie) for a guest.
	Identity string
	State    State
	// Muted: a moderator muted the participant (until they unmute).
	Muted bool
	// Present: the participant has a live connection.
	Present bool
	Joined  time.Time
}

// Guest reports whether p joined without logging in.
func (p Participant) Guest() bool { return p.User.IsZero() }

// Message is a meeting chat message.
type Message struct {
	Seq   uint64    `json:"seq"`
	Stamp time.Time `json:"stamp"`
	// From is the sender's identity key, Name the name they showed.
	From string `json:"from"`
	Name string `json:"name"`
	Body string `json:"body"`
}

// File is a file shared in a meeting.
type File struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	ContentType  string    `json:"contentType"`
	Size         int64     `json:"size"`
	Uploader     string    `json:"uploader"`
	UploaderName string    `json:"uploaderName"`
	Stamp        time.Time `json:"stamp"`
	ref          string
}

// Usage is the file storage card: how many files a meeting holds and
// their size.
type Usage struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Participated is a meeting in a user's list of participated meetings.
type Participated struct {
	Meeting Meeting
	// First and Last are when the user first and last entered it (zero
	// if they were only invited).
	First, Last time.Time
	Invited     bool
}

// DevicePrefs are a user's meeting devices. Device values are browser
// device ids; WebcamQuality is "low" (the default), "medium" or "high".
type DevicePrefs struct {
	Microphone    string `json:"microphone"`
	Camera        string `json:"camera"`
	WebcamQuality string `json:"webcamQuality"`
	Speakers      string `json:"speakers"`
}

// Access is who asks to read or act on a meeting outside the live room:
// a logged-in user, a participant credential, or both.
type Access struct {
	User       jid.JID
	Credential string
}
