package jid

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in, local, domain, resource, str string
	}{
		{"alice@example.com", "alice", "example.com", "", "alice@example.com"},
		{"Alice@Example.COM/Desk", "alice", "example.com", "Desk", "alice@example.com/Desk"},
		{"example.com", "", "example.com", "", "example.com"},
		{"example.com.", "", "example.com", "", "example.com"},
		{"example.com/res/with/slashes", "", "example.com", "res/with/slashes", "example.com/res/with/slashes"},
		{"user@example.com/a@b", "user", "example.com", "a@b", "user@example.com/a@b"},
		{"ÉLODIE@example.com", "élodie", "example.com", "", "élodie@example.com"},
		{"juliet@[::1]", "juliet", "[::1]", "", "juliet@[::1]"},
		{"u@münchen.example", "u", "münchen.example", "", "u@münchen.example"},
		{"u@example.com/ 💬 phone", "u", "example.com", " 💬 phone", "u@example.com/ 💬 phone"},
	}
	for _, c := range cases {
		j, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if j.Local() != c.local || j.Domain() != c.domain || j.Resource() != c.resource || j.String() != c.str {
			t.Errorf("Parse(%q) = %q/%q/%q (%s)", c.in, j.Local(), j.Domain(), j.Resource(), j)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "@example.com", "alice@", "alice@example.com/", "a@b@c", "al ice@example.com",
		"a\"b@example.com", "a<b@example.com", "a:b@example.com",
		"alice@exa mple.com", "alice@exa..mple", "alice@[::1", strings.Repeat("a", 1024) + "@example.com",
		"alice@" + strings.Repeat("a", 64) + ".com", "alice@example.com/" + strings.Repeat("r", 1024),
		"alice@example.com/\u0007bell", "\xff@example.com",
	} {
		if j, err := Parse(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, %v; want ErrMalformed", in, j, err)
		}
	}
}

func TestEqualityAndBare(t *testing.T) {
	a := MustParse("ALICE@example.com/x")
	b := MustParse("alice@EXAMPLE.com/x")
	if a != b {
		t.Fatalf("%v != %v", a, b)
	}
	if a.Bare() != MustParse("alice@example.com") || !a.Bare().IsBare() || a.IsBare() {
		t.Fatal("Bare")
	}
	if a.Address() != "alice@example.com" || MustParse("example.com").Address() != "example.com" {
		t.Fatal("Address")
	}
	if (JID{}).String() != "" || !(JID{}).IsZero() {
		t.Fatal("zero JID")
	}
}

// FuzzParse checks that Parse never panics, that what it accepts is
// valid UTF-8 within RFC 7622's lengths, and that normalisation is
// idempotent: parsing a JID's String gives the same JID.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"alice@example.com/desk", "ÉLODIE@example.com", "[::1]", "a@b/c/d", "x@y.", "ﬀ@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		if err != nil {
			return
		}
		out := j.String()
		if !utf8.ValidString(out) || len(j.Local()) > 1023 || len(j.Domain()) > 1023 || len(j.Resource()) > 1023 {
			t.Fatalf("Parse(%q) accepted %q", s, out)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, out, err)
		}
		if again != j {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, again)
		}
	})
}
