package storage

import (
	"context"
	"errors"
	"time"
)

// ErrMeetingConflict: CreateMeeting was given an ID or link token another
// meeting already has, or UpdateMeeting a Version that is no longer the
// stored one (someone else changed the meeting in between). Nothing was
// written.
var ErrMeetingConflict = errors.New("storage: meeting id, token or version conflict")

// Meeting is an online meeting room and its settings. Package meeting
// gives the fields their meaning; stores keep them as given, except
// Version, which they manage.
type Meeting struct {
	// ID names the meeting for ever (Parley uses a UUID). Required.
	ID string
	// Token is the secret part of the meeting link; unique among
	// meetings, looked up by MeetingByToken. Required.
	Token string
	// Organizer is the bare JID of the user who owns the meeting.
	// Required.
	Organizer string
	// Version counts the writes of the meeting: CreateMeeting stores 1,
	// each UpdateMeeting adds one. Callers pass back the Version they
	// read (optimistic concurrency).
	Version uint64
	Created time.Time

	Title string
	// PasswordHash is the encoded password hash; empty means no password.
	PasswordHash string
	AllowGuests  bool
	// AttendeesCanStart: attendees may open the meeting without the
	// organizer.
	AttendeesCanStart bool
	// Uploads says who may share files; values are package meeting's.
	Uploads uint8
	Lobby   bool
	// Recording: participants may record the meeting.
	Recording bool

	// Scheduled is set when the Schedule* fields hold a schedule.
	Scheduled bool
	// ScheduleStart and ScheduleEnd bound the first occurrence.
	ScheduleStart, ScheduleEnd time.Time
	// TimeZone is the IANA name the schedule recurs in.
	TimeZone string
	// RRule is an RFC 5545 recurrence rule without DTSTART; empty for
	// a one-off.
	RRule string
	// EndBehaviour says what happens when the schedule ends; values are
	// package meeting's.
	EndBehaviour uint8
	// Archived: the meeting ended for good and is kept read-only.
	Archived bool

	// AppointmentID links a meeting the calendar created to its
	// appointment (empty otherwise).
	AppointmentID string
	// Moderators are the participants (identity keys chosen by package
	// meeting) granted moderator rights.
	Moderators []string
}

// MeetingMessage is one message of a meeting's text chat.
type MeetingMessage struct {
	// Seq orders a meeting's messages; the store assigns it, starting at
	// 1, and never reuses one, even after DeleteMeetingMessages.
	Seq   uint64
	Stamp time.Time
	// From is the sender's identity key; Name the name they showed.
	From string
	Name string
	Body string
}

// MeetingFile is a file shared in a meeting. The bytes live elsewhere
// (package meeting's FileStore); Ref names them there.
type MeetingFile struct {
	// ID is unique within the meeting. Required.
	ID          string
	Name        string
	ContentType string
	Size        int64
	Ref         string
	// Uploader is the uploader's identity key; UploaderName the name they
	// showed.
	Uploader     string
	UploaderName string
	Stamp        time.Time
}

// Participation records that a user took part in (or was invited to) a
// meeting, for the user's list of participated meetings.
type Participation struct {
	// User is the participant's bare JID; MeetingID the meeting's ID.
	User      string
	MeetingID string
	// First and Last are when the user first and last entered the
	// meeting; both zero for an invitation not yet taken up.
	First, Last time.Time
	// Invited: the user was invited (a link sent from chat, say).
	Invited bool
}

// DevicePrefs are a user's preferred devices for meetings. Device values
// are the browser's device ids; stores keep them as given.
type DevicePrefs struct {
	Microphone string
	Camera     string
	// WebcamQuality is the video quality to send ("low", "medium",
	// "high"; package meeting defaults it).
	WebcamQuality string
	Speakers      string
}

// MeetingRooms keeps the meetings themselves.
type MeetingRooms interface {
	// CreateMeeting stores a new meeting with Version 1. An ID or Token
	// already in use gives ErrMeetingConflict.
	CreateMeeting(ctx context.Context, m Meeting) error
	// Meeting returns the meeting with id, or ErrNotFound.
	Meeting(ctx context.Context, id string) (Meeting, error)
	// MeetingByToken returns the meeting whose link token is token, or
	// ErrNotFound.
	MeetingByToken(ctx context.Context, token string) (Meeting, error)
	// UpdateMeeting replaces the meeting with m.ID when its stored
	// Version is m.Version, and returns the new Version (m.Version+1).
	// A stale Version, or a Token another meeting has, gives
	// ErrMeetingConflict; a missing meeting ErrNotFound. ID, Organizer
	// and Created cannot change: the stored ones are kept.
	UpdateMeeting(ctx context.Context, m Meeting) (uint64, error)
	// DeleteMeeting removes the meeting with everything kept for it:
	// chat, file records and participations. ErrNotFound if missing.
	DeleteMeeting(ctx context.Context, id string) error
	// OrganizerMeetings returns the meetings organizer owns, oldest
	// first.
	OrganizerMeetings(ctx context.Context, organizer string) ([]Meeting, error)
	// ListMeetings returns up to max meetings (0 means 100) whose ID sorts
	// after afterID, in ID order: a full scan, page by page, for the
	// nightly sweep.
	ListMeetings(ctx context.Context, afterID string, max int) ([]Meeting, error)
}

// MeetingChats keeps meeting chat messages.
type MeetingChats interface {
	// AppendMeetingMessage stores msg (its Seq is ignored) and returns
	// the Seq it got. ErrNotFound if the meeting does not exist.
	AppendMeetingMessage(ctx context.Context, meetingID string, msg MeetingMessage) (uint64, error)
	// MeetingMessages returns up to max messages (0 means 100) with Seq
	// greater than afterSeq, in Seq order.
	MeetingMessages(ctx context.Context, meetingID string, afterSeq uint64, max int) ([]MeetingMessage, error)
	// DeleteMeetingMessages removes all of a meeting's messages.
	DeleteMeetingMessages(ctx context.Context, meetingID string) error
}

// MeetingFiles keeps the records of files shared in meetings.
type MeetingFiles interface {
	// PutMeetingFile stores f, replacing one with the same ID.
	// ErrNotFound if the meeting does not exist.
	PutMeetingFile(ctx context.Context, meetingID string, f MeetingFile) error
	// MeetingFiles returns a meeting's files, oldest first (ties by ID).
	MeetingFiles(ctx context.Context, meetingID string) ([]MeetingFile, error)
	// DeleteMeetingFile removes a record, or returns ErrNotFound.
	DeleteMeetingFile(ctx context.Context, meetingID, fileID string) error
}

// Participations keeps who took part in which meeting.
type Participations interface {
	// PutParticipation creates or replaces the record for (p.User,
	// p.MeetingID). ErrNotFound if the meeting does not exist.
	PutParticipation(ctx context.Context, p Participation) error
	// Participation returns one record, or ErrNotFound.
	Participation(ctx context.Context, user, meetingID string) (Participation, error)
	// Participations returns user's records, in MeetingID order.
	Participations(ctx context.Context, user string) ([]Participation, error)
}

// MeetingPrefs keeps each user's device preferences.
type MeetingPrefs interface {
	// DevicePrefs returns user's preferences, or ErrNotFound.
	DevicePrefs(ctx context.Context, user string) (DevicePrefs, error)
	// PutDevicePrefs stores user's preferences, replacing what was there.
	PutDevicePrefs(ctx context.Context, user string, p DevicePrefs) error
}

// Meetings is everything package meeting keeps.
type Meetings interface {
	MeetingRooms
	MeetingChats
	MeetingFiles
	Participations
	MeetingPrefs
}
