package storage

import (
	"context"
	"time"
)

// Room is a persistent multi-user chat room (XEP-0045): its settings, its
// subject and the lasting affiliations of users with it. Package muc gives
// the fields their meaning; stores keep them as given. What happens in a
// room (occupants, roles) is not kept: it ends with the visit.
type Room struct {
	// JID is the room's bare address (team@conference.example.com),
	// normalised. Required; a store holds one room per JID.
	JID     string
	Created time.Time

	Name        string
	Description string
	Language    string
	// Public: the room is listed in service discovery.
	Public      bool
	MembersOnly bool
	Moderated   bool
	// Password is the room password in the clear, empty for none: the
	// room hands it out in invitations (XEP-0045 section 7.8.2) and shows
	// it to owners in the configuration form, so it cannot be hashed.
	Password string
	// WhoIs, AllowPM, Broadcast and MemberList hold package muc's values:
	// who sees real JIDs, who may send private messages, the roles whose
	// presence is broadcast and the roles that may read the member list.
	WhoIs      uint8
	AllowPM    uint8
	Broadcast  uint8
	MemberList uint8
	// MaxUsers is the most occupants (0: no limit); MaxHistory the most
	// messages of history sent on entering.
	MaxUsers   int
	MaxHistory int
	// ChangeSubject: occupants, not only moderators, may change the
	// subject. AllowInvites: members may invite to a members-only room.
	ChangeSubject bool
	AllowInvites  bool
	// Archive: the room's messages are archived (XEP-0313, under the
	// room's JID as the archive owner).
	Archive bool

	// Subject is the current subject; SubjectNick who set it and
	// SubjectStamp when.
	Subject      string
	SubjectNick  string
	SubjectStamp time.Time

	// Alias is the mail alias whose members the room follows, when the
	// room stands for one (package muc's alias rooms); empty otherwise.
	Alias string

	// Affiliations are the lasting affiliations, one per JID.
	Affiliations []RoomAffiliation
}

// RoomAffiliation is a user's lasting affiliation with a room.
type RoomAffiliation struct {
	// JID is the user's bare JID (or a bare domain, for a ban of a whole
	// domain).
	JID string
	// Affiliation holds package muc's value (owner, admin, member,
	// outcast).
	Affiliation uint8
	// Nick is the nickname reserved for the user in the room, if any.
	Nick string
	// Reason is what the admin gave when setting the affiliation.
	Reason string
}

// Rooms keeps the persistent rooms of the multi-user chat service. Room
// messages are not kept here: they go to the Archive, with the room's JID
// as the owner.
type Rooms interface {
	// PutRoom creates or replaces the room with r.JID.
	PutRoom(ctx context.Context, r Room) error
	// Room returns the room with that JID, or ErrNotFound.
	Room(ctx context.Context, jid string) (Room, error)
	// DeleteRoom removes the room, or returns ErrNotFound.
	DeleteRoom(ctx context.Context, jid string) error
	// ListRooms returns up to max rooms (0 means 100) whose JID sorts
	// after afterJID, in JID order: a full scan, page by page.
	ListRooms(ctx context.Context, afterJID string, max int) ([]Room, error)
}
