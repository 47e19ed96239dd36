package xmppsrv

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// XEP-0215: the STUN and TURN servers, TURN REST credentials that expire,
// selection by type, credentials for one service, and the errors.
func TestExternalServiceDiscovery(t *testing.T) {
	h := newHarness(t)
	d, err := ExtDisco([]ICEServer{
		{URLs: []string{"stun:stun.example.test"}},
		{URLs: []string{"turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:443?transport=tcp"}, Secret: "s3cret"},
		{URLs: []string{"turn:[2001:db8::1]:3479"}, Username: "fixed", Credential: "pw"},
	}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Extend(nil, []AccountHandler{d})
	a := h.online("alice", "desk")
	q := ok(t, a.iq("get", domain, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)).Child(nsDiscoI, "query")
	if !strings.Contains(string(q.Bytes("")), nsExtDisco) {
		t.Errorf("server disco lacks %s", nsExtDisco)
	}
	svcs := ok(t, a.iq("get", domain, `<services xmlns='urn:xmpp:extdisco:2'/>`)).Child(nsExtDisco, "services").Elements()
	if len(svcs) != 4 {
		t.Fatalf("%d services", len(svcs))
	}
	if s := svcs[0]; s.Get("type") != "stun" || s.Get("host") != "stun.example.test" || s.Get("port") != "3478" || s.Get("transport") != "udp" {
		t.Errorf("stun: %s", s.Bytes(""))
	}
	turn := svcs[1]
	exp, err := time.Parse("2006-01-02T15:04:05Z", turn.Get("expires"))
	if err != nil || exp.Before(time.Now().Add(50*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("expires %q", turn.Get("expires"))
	}
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(turn.Get("username")))
	if !strings.HasSuffix(turn.Get("username"), ":alice@example.test") || turn.Get("password") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("TURN REST credentials: %s", turn.Bytes(""))
	}
	if s := svcs[2]; s.Get("type") != "turns" || s.Get("port") != "443" || s.Get("transport") != "tcp" {
		t.Errorf("turns: %s", s.Bytes(""))
	}
	if s := svcs[3]; s.Get("host") != "2001:db8::1" || s.Get("port") != "3479" || s.Get("username") != "fixed" || s.Get("password") != "pw" {
		t.Errorf("fixed credentials: %s", s.Bytes(""))
	}
	only := ok(t, a.iq("get", domain, `<services xmlns='urn:xmpp:extdisco:2' type='stun'/>`)).Child(nsExtDisco, "services")
	if len(only.Elements()) != 1 || only.Get("type") != "stun" {
		t.Errorf("type='stun': %s", only.Bytes(""))
	}
	cred := ok(t, a.iq("get", domain, `<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.test' type='turns'/></credentials>`))
	if s := cred.Child(nsExtDisco, "credentials").Elements(); len(s) != 1 || s[0].Get("password") == "" {
		t.Errorf("credentials: %s", cred.Bytes(nsClient))
	}
	if c := stanzaErrorCond(a.iq("get", domain, `<credentials xmlns='urn:xmpp:extdisco:2'><service host='nowhere' type='turn'/></credentials>`)); c != "item-not-found" {
		t.Errorf("unknown service: %s", c)
	}
	if _, err := ExtDisco([]ICEServer{{URLs: []string{"http://x"}}}, 0); err == nil {
		t.Error("an http URL was taken")
	}
}
