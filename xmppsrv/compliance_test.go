package xmppsrv

import (
	"strings"
	"testing"
)

// In-band registration (XEP-0077) is off: accounts come from the mail
// host. The server neither announces it in its features nor in disco, and
// answers a registration request with service-unavailable.
func TestInBandRegistrationOff(t *testing.T) {
	h := newHarness(t)
	c := h.dial()
	features := c.open()
	if strings.Contains(string(features.Bytes("")), "iq-register") {
		t.Fatalf("stream features offer registration: %s", features.Bytes(""))
	}
	a := h.online("alice", "desk")
	info := ok(t, a.iq("get", "example.test", `<query xmlns='http://jabber.org/protocol/disco#info'/>`))
	if strings.Contains(string(info.Bytes(nsClient)), nsRegister) {
		t.Fatalf("server disco lists %s: %s", nsRegister, info.Bytes(nsClient))
	}
	if cond := stanzaErrorCond(a.iq("get", "", `<query xmlns='jabber:iq:register'/>`)); cond != "service-unavailable" {
		t.Fatalf("registration request: %q", cond)
	}
}
