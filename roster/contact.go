package roster

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleyhq/parley/jid"
)

// ErrInvalidContact is returned by ParseContact. Its text is the message the
// web panel shows under the Add Contact box, kept verbatim from the seed
// product (hence the capital and the period inside, unusual for Go errors).
var ErrInvalidContact = errors.New("Invalid value for the name and XMPP address. Please use the format 'Name <username@example.org>'")

// ParseContact parses what a user types into the Add Contact box:
//
//	Full Name <user@otherdomain.com>
//
// or a bare address, user@otherdomain.com, which gives an empty name.
// Surrounding white space is ignored, in the name and the address too. As
// in the seed product the name runs up to the last '<', so it may itself
// contain '<' or '>'; it must not be empty and must not contain control
// characters. The address must be a bare JID with a localpart; it is
// returned normalised. Any other input returns ErrInvalidContact.
func ParseContact(s string) (name string, addr jid.JID, err error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", jid.JID{}, ErrInvalidContact
	}
	raw := s
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if !strings.HasSuffix(s, ">") {
			return "", jid.JID{}, ErrInvalidContact
		}
		name = strings.TrimSpace(s[:i])
		raw = strings.TrimSpace(s[i+1 : len(s)-1])
		if name == "" || strings.IndexFunc(name, unicode.IsControl) >= 0 {
			return "", jid.JID{}, ErrInvalidContact
		}
	} else if strings.ContainsRune(s, '>') {
		return "", jid.JID{}, ErrInvalidContact
	}
	// jid.Parse would take "a b@c" apart at the '@' and then refuse the
	// space only through PRECIS; refuse white space up front so that the
	// rule does not depend on the profile.
	if raw == "" || strings.IndexFunc(raw, unicode.IsSpace) >= 0 {
		return "", jid.JID{}, ErrInvalidContact
	}
	addr, err = jid.Parse(raw)
	if err != nil || addr.Local() == "" || !addr.IsBare() {
		return "", jid.JID{}, ErrInvalidContact
	}
	return name, addr, nil
}

// FormatContact is the inverse of ParseContact: "Name <addr>", or the bare
// address when name is empty.
func FormatContact(name string, addr jid.JID) string {
	if name == "" {
		return addr.String()
	}
	return name + " <" + addr.String() + ">"
}
