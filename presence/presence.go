// Package presence is Parley's status model: what a user shows (available,
// chat, away, dnd, xa), with status text and priority, per resource; how a
// user's resources add up to one status for the webmail panel; and the
// limits RFC 6121 section 4.7 sets on the values. It knows no XML: the XMPP
// edge fills a Status from a <presence/> stanza and asks this package what
// to make of it.
package presence

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Show is the availability sub-state of an available resource
// (RFC 6121 section 4.7.2.1). The zero value is Available.
type Show uint8

const (
	Available Show = iota // no <show/>: online and available
	Chat                  // actively interested in chatting
	Away                  // temporarily away
	XA                    // away for an extended period
	DND                   // busy, do not disturb
	Offline               // not available (an unavailable presence)
)

var showNames = [...]string{"", "chat", "away", "xa", "dnd", "unavailable"}

// String returns the <show/> value ("" for Available, "unavailable" for
// Offline).
func (s Show) String() string {
	if int(s) < len(showNames) {
		return showNames[s]
	}
	return fmt.Sprintf("Show(%d)", s)
}

// Label returns the name the webmail panel shows for s.
func (s Show) Label() string {
	switch s {
	case Chat:
		return "Free to chat"
	case Away:
		return "Away"
	case XA:
		return "Extended away"
	case DND:
		return "Do Not Disturb"
	case Offline:
		return "Offline"
	}
	return "Available"
}

// ErrBadValue is wrapped by ParseShow, CheckPriority and CheckStatus errors;
// the XMPP edge answers it with bad-request.
var ErrBadValue = errors.New("presence: bad value")

// ParseShow parses the character data of a <show/> element; an absent
// element is Available.
func ParseShow(s string) (Show, error) {
	switch s {
	case "":
		return Available, nil
	case "chat":
		return Chat, nil
	case "away":
		return Away, nil
	case "xa":
		return XA, nil
	case "dnd":
		return DND, nil
	}
	return Available, fmt.Errorf("%w: <show/> must be chat, away, xa or dnd, not %q", ErrBadValue, s)
}

// MaxStatus bounds status text, in bytes. RFC 6121 sets no limit; a long
// status is sent to every contact, so it is capped.
const MaxStatus = 1024

// CheckPriority validates a <priority/> value (RFC 6121 4.7.2.3: -128..127).
func CheckPriority(p int) error {
	if p < -128 || p > 127 {
		return fmt.Errorf("%w: priority %d is outside -128..127", ErrBadValue, p)
	}
	return nil
}

// CheckStatus validates status text.
func CheckStatus(s string) error {
	if len(s) > MaxStatus {
		return fmt.Errorf("%w: status text is %d bytes, more than %d", ErrBadValue, len(s), MaxStatus)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: status text is not UTF-8", ErrBadValue)
	}
	return nil
}

// Status is one resource's presence.
type Status struct {
	Show     Show
	Text     string
	Priority int
}

// rank orders shows from most to least available, for Aggregate.
func rank(s Show) int {
	switch s {
	case Chat:
		return 0
	case Available:
		return 1
	case Away:
		return 3
	case XA:
		return 4
	case DND:
		return 2
	}
	return 5
}

// Aggregate folds the statuses of a user's resources into the one status
// the webmail panel shows for that user: the highest-priority resource
// wins, and among equal priorities the most available show (a user who is
// busy on the phone but available at the desk reads as available). No
// resources means Offline.
func Aggregate(resources []Status) Status {
	best := Status{Show: Offline}
	found := false
	for _, r := range resources {
		if r.Show == Offline {
			continue
		}
		if !found || r.Priority > best.Priority ||
			(r.Priority == best.Priority && rank(r.Show) < rank(best.Show)) {
			best, found = r, true
		}
	}
	return best
}
