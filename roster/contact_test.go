package roster

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func TestParseContact(t *testing.T) {
	good := []struct{ in, name, addr string }{
		{"John Doe <john@otherdomain.com>", "John Doe", "john@otherdomain.com"},
		{"  John Doe   <  John@OtherDomain.COM >  ", "John Doe", "john@otherdomain.com"},
		{"John<john@example.org>", "John", "john@example.org"},
		{"john@example.org", "", "john@example.org"},
		{"Dr. No <no@example.org>", "Dr. No", "no@example.org"},
		// The name runs to the last '<', as in the seed's /^(.*) <(.*)>$/.
		{"A <b> <c@example.org>", "A <b>", "c@example.org"},
		{"Zoë Ünal <zoe@exämple.org>", "Zoë Ünal", "zoe@exämple.org"},
		{"user@localhost", "", "user@localhost"},
	}
	for _, c := range good {
		name, addr, err := ParseContact(c.in)
		if err != nil || name != c.name || addr.String() != c.addr {
			t.Errorf("ParseContact(%q) = %q, %q, %v; want %q, %q", c.in, name, addr, err, c.name, c.addr)
		}
	}
	bad := []string{
		"", "   ", "John Doe", "John Doe john@example.org", "<john@example.org>", " <john@example.org>",
		"John <john@example.org", "John john@example.org>", "John <>", "John < >",
		"John <example.org>", "John <@example.org>", "John <john@>", "John <john@example.org/phone>",
		"john@example.org/phone", "example.org", "john@exa mple.org", "John <jo hn@example.org>",
		"Jo\nhn <john@example.org>", "Jo\x00hn <john@example.org>", "John <john@example.org>x",
		"john@example.org>", "\xff <john@example.org>", "John <john@@example.org>",
	}
	for _, in := range bad {
		name, addr, err := ParseContact(in)
		if !errors.Is(err, ErrInvalidContact) {
			t.Errorf("ParseContact(%q) = %q, %q, %v; want ErrInvalidContact", in, name, addr, err)
		}
	}
	const msg = "Invalid value for the name and XMPP address. Please use the format 'Name <username@example.org>'"
	if _, _, err := ParseContact("nope"); err == nil || err.Error() != msg {
		t.Errorf("error text %q", err)
	}
}

func FuzzParseContact(f *testing.F) {
	for _, s := range []string{
		"John Doe <john@otherdomain.com>", "john@example.org", "A <b> <c@example.org>",
		"<x@y>", "a <b@c/d>", "Zoë <zoe@exämple.org>", " \t<>", "x <\u00a0a@b>", "a@b@c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, addr, err := ParseContact(s)
		if err != nil {
			if err != ErrInvalidContact {
				t.Fatalf("ParseContact(%q): error %v is not ErrInvalidContact", s, err)
			}
			return
		}
		if addr.Local() == "" || !addr.IsBare() {
			t.Fatalf("ParseContact(%q) gave address %q", s, addr)
		}
		if strings.IndexFunc(name, unicode.IsControl) >= 0 || strings.TrimSpace(name) != name {
			t.Fatalf("ParseContact(%q) gave name %q", s, name)
		}
		formatted := FormatContact(name, addr)
		name2, addr2, err := ParseContact(formatted)
		if err != nil || name2 != name || addr2 != addr {
			t.Fatalf("round trip of %q via %q: %q, %q, %v; want %q, %q", s, formatted, name2, addr2, err, name, addr)
		}
	})
}
