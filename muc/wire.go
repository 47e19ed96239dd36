package muc

import (
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Wire is the protocol front end of a Service: it renders and delivers
// what rooms send to occupants' sessions, and turns archived room
// messages back into the form occupants received them in. Presence and
// Message are called with the room's lock held, in the order clients must
// see the stanzas (XEP-0045 section 7.1): they must not block and must
// not call back into the Service.
type Wire interface {
	// Presence delivers an occupant's presence to the session to.
	Presence(to jid.JID, p *Presence)
	// Message delivers a room message to the session to.
	Message(to jid.JID, m *Message)
	// Replay returns the message an archived room message was broadcast
	// as (Message.Data of a Groupchat message), for the history of a
	// room reloaded after a restart.
	Replay(m storage.ArchivedMessage) ([]byte, error)
}

// Presence is an occupant's presence as one recipient sees it.
type Presence struct {
	// Room is the room; Nick the occupant (the occupant JID's resource).
	Room jid.JID
	Nick string
	// Unavailable: the occupant left (or changed nickname, with code 303).
	Unavailable bool
	// Payload is the occupant's own presence content as the front end
	// passed it to Enter or Exit (show, status, extensions); nil for
	// presence the room makes (a kick, say).
	Payload []byte
	// Affiliation and Role are the occupant's.
	Affiliation Affiliation
	Role        Role
	// JID is the occupant's real full JID when the recipient may see it;
	// zero otherwise.
	JID jid.JID
	// NewNick is the new nickname, with code 303.
	NewNick string
	// Actor is the nickname of who kicked or banned the occupant, Reason
	// why (also the reason given for a role or affiliation change).
	Actor, Reason string
	// Codes are the muc#user status codes (110 self, 100 non-anonymous,
	// 170 archived, 201 created, 210 nickname changed by the service,
	// 301 banned, 303 new nickname, 307 kicked, 321 and 322 removed as a
	// non-member, 332 shutdown, 333 technical removal).
	Codes []int
	// Destroy is set when the room was destroyed.
	Destroy *Destroy
	// ID is the 'id' of the recipient's own presence this answers, for
	// its self-presence.
	ID string
}

// Destroy tells occupants of a destroyed room where to go and why.
type Destroy struct {
	// Venue is an alternate room (zero for none), Password its password.
	Venue    jid.JID
	Password string
	Reason   string
}

// MessageKind says what a room Message carries.
type MessageKind uint8

const (
	// Groupchat is a message said in the room: Data is the stanza every
	// occupant receives.
	Groupchat MessageKind = iota
	// History is a past Groupchat message sent on entering: Data as it
	// was broadcast, Stamp when.
	History
	// Subject is the room subject: Subject, set by Nick (empty: the room)
	// at Stamp. Live marks a change happening now, as opposed to the
	// subject sent on entering.
	Subject
	// Status is a notice from the room itself with status Codes (104
	// configuration changed, 170 to 173 privacy changes).
	Status
)

// Message is a room message to one recipient.
type Message struct {
	Room jid.JID
	Kind MessageKind
	// Nick is the sender's nickname (Subject: who set it).
	Nick string
	// Data is the stanza as the front end built it for Speak (Groupchat,
	// History).
	Data []byte
	// Stamp is when it was said or set (History, Subject).
	Stamp   time.Time
	Subject string
	// ID is the 'id' of the stanza that caused it (a live subject change).
	ID    string
	Live  bool
	Codes []int
}
