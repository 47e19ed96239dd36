// Package jid parses and normalises XMPP addresses (RFC 7622): the
// localpart with the PRECIS UsernameCaseMapped profile, the domainpart
// lower-cased and checked, and the resourcepart with the OpaqueString
// profile. A JID is a small comparable value: two JIDs that name the same
// entity compare equal with ==.
package jid

import (
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// ErrMalformed is wrapped by every parse error; XMPP answers it with the
// jid-malformed condition.
var ErrMalformed = errors.New("jid: malformed")

// JID is a normalised XMPP address. The zero JID is empty and invalid.
type JID struct {
	local, domain, resource string
}

// maxPart is RFC 7622's limit on each part, in bytes.
const maxPart = 1023

// Parse splits and normalises s as RFC 7622 section 3.1 describes.
func Parse(s string) (JID, error) {
	if s == "" {
		return JID{}, malformed("empty address")
	}
	var local, domain, resource string
	rest := s
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		resource = rest[i+1:]
		rest = rest[:i]
		if resource == "" {
			return JID{}, malformed("empty resourcepart")
		}
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		local = rest[:i]
		rest = rest[i+1:]
		if local == "" {
			return JID{}, malformed("empty localpart")
		}
	}
	domain = rest
	return New(local, domain, resource)
}

// MustParse is Parse for constants in tests and examples; it panics on error.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return j
}

// New normalises and checks the three parts (local and resource may be empty).
func New(local, domain, resource string) (JID, error) {
	var j JID
	var err error
	if local != "" {
		if j.local, err = precis.UsernameCaseMapped.String(local); err != nil {
			return JID{}, malformed("localpart: " + err.Error())
		}
		if strings.ContainsAny(j.local, "\"&'/:<>@") {
			return JID{}, malformed("localpart contains a character RFC 7622 forbids")
		}
		if len(j.local) > maxPart {
			return JID{}, malformed("localpart longer than 1023 bytes")
		}
	}
	if j.domain, err = normDomain(domain); err != nil {
		return JID{}, err
	}
	if resource != "" {
		if j.resource, err = precis.OpaqueString.String(resource); err != nil {
			return JID{}, malformed("resourcepart: " + err.Error())
		}
		if len(j.resource) > maxPart {
			return JID{}, malformed("resourcepart longer than 1023 bytes")
		}
	}
	return j, nil
}

func normDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", malformed("empty domainpart")
	}
	if len(d) > maxPart {
		return "", malformed("domainpart longer than 1023 bytes")
	}
	if !utf8.ValidString(d) {
		return "", malformed("domainpart is not UTF-8")
	}
	if d[0] == '[' { // IPv6 literal
		if d[len(d)-1] != ']' {
			return "", malformed("unterminated IPv6 literal")
		}
		return strings.ToLower(d), nil
	}
	d = strings.ToLower(d)
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return "", malformed("domainpart has an empty or over-long label")
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			case r > 0x7f && r != utf8.RuneError && !isSpaceOrControl(r):
				// internationalised label, kept in its lower-cased U-label form
			default:
				return "", malformed("domainpart contains " + string(r))
			}
		}
	}
	return d, nil
}

func isSpaceOrControl(r rune) bool {
	return r <= 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x3000 || r == 0xa0
}

func malformed(why string) error { return &Error{why} }

// Error is a parse error; it wraps ErrMalformed.
type Error struct{ why string }

func (e *Error) Error() string { return "jid: malformed: " + e.why }
func (e *Error) Unwrap() error { return ErrMalformed }

// Local returns the localpart ("" for a domain JID).
func (j JID) Local() string { return j.local }

// Domain returns the domainpart.
func (j JID) Domain() string { return j.domain }

// Resource returns the resourcepart ("" for a bare JID).
func (j JID) Resource() string { return j.resource }

// Bare returns the JID without its resource.
func (j JID) Bare() JID { return JID{local: j.local, domain: j.domain} }

// IsBare reports whether the JID has no resource.
func (j JID) IsBare() bool { return j.resource == "" }

// IsZero reports whether j is the empty JID.
func (j JID) IsZero() bool { return j.domain == "" }

// WithResource returns a copy of j with the resource replaced (not
// normalised: use New for untrusted input).
func (j JID) WithResource(r string) JID { j.resource = r; return j }

// String formats the JID as local@domain/resource.
func (j JID) String() string {
	if j.domain == "" {
		return ""
	}
	n := len(j.domain)
	if j.local != "" {
		n += len(j.local) + 1
	}
	if j.resource != "" {
		n += len(j.resource) + 1
	}
	var b strings.Builder
	b.Grow(n)
	if j.local != "" {
		b.WriteString(j.local)
		b.WriteByte('@')
	}
	b.WriteString(j.domain)
	if j.resource != "" {
		b.WriteByte('/')
		b.WriteString(j.resource)
	}
	return b.String()
}

// Address returns local@domain, the mail address of a user JID.
func (j JID) Address() string {
	if j.local == "" {
		return j.domain
	}
	return j.local + "@" + j.domain
}
