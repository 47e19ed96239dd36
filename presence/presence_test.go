package presence

import (
	"errors"
	"strings"
	"testing"
)

func TestParseShow(t *testing.T) {
	for in, want := range map[string]Show{"": Available, "chat": Chat, "away": Away, "xa": XA, "dnd": DND} {
		got, err := ParseShow(in)
		if err != nil || got != want {
			t.Errorf("ParseShow(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, bad := range []string{"busy", "Away", "unavailable", " away"} {
		if _, err := ParseShow(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseShow(%q) err = %v, want ErrBadValue", bad, err)
		}
	}
}

func TestChecks(t *testing.T) {
	for _, p := range []int{-128, 0, 127} {
		if err := CheckPriority(p); err != nil {
			t.Errorf("CheckPriority(%d) = %v", p, err)
		}
	}
	for _, p := range []int{-129, 128, 1000} {
		if err := CheckPriority(p); !errors.Is(err, ErrBadValue) {
			t.Errorf("CheckPriority(%d) = %v, want ErrBadValue", p, err)
		}
	}
	if err := CheckStatus(strings.Repeat("ü", MaxStatus/2)); err != nil {
		t.Errorf("CheckStatus(max) = %v", err)
	}
	if err := CheckStatus(strings.Repeat("x", MaxStatus+1)); !errors.Is(err, ErrBadValue) {
		t.Errorf("CheckStatus(too long) = %v", err)
	}
	if err := CheckStatus("\xff"); !errors.Is(err, ErrBadValue) {
		t.Errorf("CheckStatus(invalid utf8) = %v", err)
	}
}

func TestAggregate(t *testing.T) {
	cases := []struct {
		name string
		in   []Status
		want Show
	}{
		{"none", nil, Offline},
		{"only offline", []Status{{Show: Offline}}, Offline},
		{"one", []Status{{Show: Away}}, Away},
		{"priority wins", []Status{{Show: Available, Priority: 0}, {Show: DND, Priority: 5}}, DND},
		{"equal priority most available", []Status{{Show: DND}, {Show: Available}, {Show: Away}}, Available},
		{"dnd beats away at same priority", []Status{{Show: Away}, {Show: DND}}, DND},
		{"chat beats available", []Status{{Show: Available}, {Show: Chat}}, Chat},
		{"negative priority still counts", []Status{{Show: Away, Priority: -1}}, Away},
	}
	for _, c := range cases {
		if got := Aggregate(c.in); got.Show != c.want {
			t.Errorf("%s: Aggregate = %v, want %v", c.name, got.Show, c.want)
		}
	}
}
