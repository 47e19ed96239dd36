package xmppsrv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/jid"
)

func isPush(local string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Local == "iq" && e.Get("type") == "set" && e.Child(nsBlocking, local) != nil
	}
}

// XEP-0191: blocklist, block with pushes, what each side sees while
// blocked, and unblock.
func TestBlocking(t *testing.T) {
	h := pepHarness(t)
	a := h.online("alice", "desk")
	a2 := h.online("alice", "phone")
	b := h.online("bob", "phone")
	for _, c := range []*client{a, a2} {
		q := ok(t, c.iq("get", "", `<blocklist xmlns='urn:xmpp:blocking'/>`)).Child(nsBlocking, "blocklist")
		if q == nil || len(q.Elements()) != 0 {
			t.Fatalf("empty blocklist: %s", q.Bytes(""))
		}
	}
	bad := a.iq("set", "", `<block xmlns='urn:xmpp:blocking'/>`)
	if cond, _ := pubsubError(bad); cond != "bad-request" {
		t.Errorf("empty block: %s", bad.Bytes(nsClient))
	}
	ok(t, a.iq("set", "", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.test'/></block>`))
	for _, c := range []*client{a, a2} {
		p := c.expect("block push", isPush("block"))
		if it := p.Child(nsBlocking, "block").Child(nsBlocking, "item"); it.Get("jid") != "bob@example.test" {
			t.Errorf("push: %s", p.Bytes(nsClient))
		}
		c.send(`<iq type='result' id='%s'/>`, p.Get("id"))
	}
	// Bob sees alice go offline, both resources.
	b.expectAll("alice unavailable", presenceFrom(a.jid, "unavailable"), presenceFrom(a2.jid, "unavailable"))
	// Bob's message bounces with service-unavailable; alice's with
	// not-acceptable and <blocked/>.
	b.send(`<message type='chat' to='alice@example.test' id='m1'><body>hello?</body></message>`)
	el := b.expect("bounce", isStanza("message", "error"))
	if cond, _ := pubsubError(el); cond != "service-unavailable" {
		t.Errorf("bob to alice: %s", el.Bytes(nsClient))
	}
	a.send(`<message type='chat' to='bob@example.test' id='m2'><body>hi</body></message>`)
	el = a.expect("bounce", isStanza("message", "error"))
	if cond, app := pubsubError(el); cond != "not-acceptable" || app != "blocked" {
		t.Errorf("alice to bob: %s", el.Bytes(nsClient))
	}
	// An iq from bob gets service-unavailable too; presence goes nowhere.
	bad = b.iq("get", a.jid, `<ping xmlns='urn:xmpp:ping'/>`)
	if cond, _ := pubsubError(bad); cond != "service-unavailable" {
		t.Errorf("bob's iq: %s", bad.Bytes(nsClient))
	}
	b.send(`<presence><show>dnd</show></presence>`)
	b.send(`<presence to='alice@example.test' type='subscribe'/>`)
	a.none(300*time.Millisecond, "bob's presence", func(e *Element) bool {
		return (e.Local == "presence" || e.Local == "message") && strings.HasPrefix(e.Get("from"), "bob@")
	})
	a.send(`<presence><show>away</show></presence>`)
	b.none(300*time.Millisecond, "alice's presence", func(e *Element) bool {
		return e.Local == "presence" && strings.HasPrefix(e.Get("from"), "alice@")
	})
	// A new resource of bob does not get alice's presence either.
	b2 := h.login("bob", "tablet")
	b2.send(`<presence/>`)
	b2.none(300*time.Millisecond, "alice's presence at login", func(e *Element) bool {
		return e.Local == "presence" && strings.HasPrefix(e.Get("from"), "alice@")
	})
	q := ok(t, a.iq("get", "", `<blocklist xmlns='urn:xmpp:blocking'/>`)).Child(nsBlocking, "blocklist")
	if len(q.Elements()) != 1 || q.FirstChild().Get("jid") != "bob@example.test" {
		t.Errorf("blocklist: %s", q.Bytes(""))
	}
	stored, _ := h.store.UserData(context.Background(), "alice@"+domain, "blocklist")
	if string(stored) != "bob@example.test\n" {
		t.Errorf("stored blocklist %q", stored)
	}
	// Unblock: pushes, and bob sees alice's current presence.
	ok(t, a.iq("set", "", `<unblock xmlns='urn:xmpp:blocking'><item jid='bob@example.test'/></unblock>`))
	a2.expect("unblock push", isPush("unblock"))
	b.expect("alice is back", func(e *Element) bool {
		return e.Local == "presence" && e.Get("from") == a.jid && e.ChildText(nsClient, "show") == "away"
	})
	b.send(`<message type='chat' to='alice@example.test'><body>now?</body></message>`)
	a.expect("message", isChat("now?"))
}

// Blocking a whole domain, and unblocking everyone at once.
func TestBlockingDomainAndUnblockAll(t *testing.T) {
	h := pepHarness(t)
	a := h.online("alice", "desk")
	b := h.online("bob", "phone")
	ok(t, a.iq("set", "", `<block xmlns='urn:xmpp:blocking'><item jid='example.test'/><item jid='elsewhere.test'/></block>`))
	b.send(`<message type='chat' to='alice@example.test'><body>x</body></message>`)
	if el := b.expect("bounce", isStanza("message", "error")); stanzaErrorCond(el) != "service-unavailable" {
		t.Errorf("domain block: %s", el.Bytes(nsClient))
	}
	ok(t, a.iq("set", "", `<unblock xmlns='urn:xmpp:blocking'/>`))
	q := ok(t, a.iq("get", "", `<blocklist xmlns='urn:xmpp:blocking'/>`)).Child(nsBlocking, "blocklist")
	if len(q.Elements()) != 0 {
		t.Errorf("after unblock all: %s", q.Bytes(""))
	}
	b.send(`<message type='chat' to='alice@example.test'><body>y</body></message>`)
	a.expect("message", isChat("y"))
	bad := a.iq("set", "", `<block xmlns='urn:xmpp:blocking'><item jid='@@bad'/></block>`)
	if cond, _ := pubsubError(bad); cond != "jid-malformed" {
		t.Errorf("malformed JID: %s", bad.Bytes(nsClient))
	}
}

// XEP-0163 section 4.3.4: no PEP notifications to a blocked contact.
func TestBlockingStopsPEPNotifications(t *testing.T) {
	h := pepHarness(t)
	a := h.online("alice", "desk")
	b := h.withCaps("bob", "phone", "urn:test:n+notify")
	ok(t, a.iq("set", "", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.test'/></block>`))
	ok(t, a.iq("set", "", publishXML("urn:test:n", "1", "<e xmlns='urn:test:n'/>", field("pubsub#access_model", "open"))))
	b.none(300*time.Millisecond, "an event from a blocker", event("alice@"+domain, "urn:test:n"))
	bad := b.iq("get", "alice@"+domain, itemsXML("urn:test:n", ""))
	if cond, _ := pubsubError(bad); cond != "service-unavailable" {
		t.Errorf("blocked contact reading items: %s", bad.Bytes(nsClient))
	}
}

// BenchmarkBlocked is the cost the blocklist adds to routing: one check
// per recipient of every stanza.
func BenchmarkBlocked(b *testing.B) {
	h := pepHarness(b)
	var bl *blocking
	for _, hd := range h.srv.handlers {
		if x, ok := hd.(*blocking); ok {
			bl = x
		}
	}
	owner, other := jid.MustParse("alice@example.test"), jid.MustParse("bob@example.test/phone")
	bl.lists[keyOf(owner)] = newBlockList(map[string]bool{"carol@example.test": true, "elsewhere.test": true})
	b.ResetTimer()
	for b.Loop() {
		if bl.Blocked(owner, other) {
			b.Fatal("bob is not blocked")
		}
	}
}
