package xmppsrv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/storagetest"
)

func isChat(body string) func(*Element) bool {
	return func(e *Element) bool { return e.Local == "message" && e.ChildText(nsClient, "body") == body }
}

func presenceFrom(prefix, typ string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Local == "presence" && e.Get("type") == typ && strings.HasPrefix(e.Get("from"), prefix)
	}
}

func stanzaErrorCond(e *Element) string {
	if er := e.Child(nsClient, "error"); er != nil {
		if c := er.FirstChild(); c != nil {
			return c.Local
		}
	}
	return ""
}

func TestMessageUnicodeBothWays(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	body := "Grüße 👋 — 你好 <&> \"quoted\""
	a.send(`<message type='chat' to='bob@example.test' id='m1'><body>%s</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, xmlEscape(body))
	el := b.expect("message", isChat(body))
	if el.Get("from") != a.jid || el.Get("id") != "m1" || el.Child("http://jabber.org/protocol/chatstates", "active") == nil {
		t.Fatalf("delivered: %s", el.Bytes(nsClient))
	}
	b.send(`<message type='chat' to='%s'><body>reply</body></message>`, el.Get("from"))
	if el := a.expect("reply", isChat("reply")); el.Get("from") != b.jid {
		t.Fatalf("reply from %q", el.Get("from"))
	}
}

func TestMessageErrors(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	for _, tc := range []struct{ to, cond, text string }{
		{"nobody@example.test", "service-unavailable", "there is no user"},
		{"dave@example.test", "service-unavailable", "has not enabled chat"},
		{"someone@elsewhere.test", "remote-server-not-found", "other servers"},
	} {
		a.send(`<message type='chat' to='%s' id='e'><body>hi</body></message>`, tc.to)
		el := a.expect("error for "+tc.to, isStanza("message", "error"))
		if stanzaErrorCond(el) != tc.cond || !strings.Contains(el.Child(nsClient, "error").ChildText(nsStanzas, "text"), tc.text) {
			t.Errorf("to %s: %s", tc.to, el.Bytes(nsClient))
		}
		if el.ChildText(nsClient, "body") != "hi" {
			t.Errorf("error should carry the original body: %s", el.Bytes(nsClient))
		}
	}
}

func TestOfflineDeliveryInOrderWithDelay(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	for i := 0; i < 5; i++ {
		a.send(`<message type='chat' to='bob@example.test'><body>offline %d</body></message>`, i)
	}
	// A chat state alone is not stored.
	a.send(`<message type='chat' to='bob@example.test'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	a.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.expect("sync", isIQResult("sync"))
	b := h.login("bob", "phone")
	b.send(`<presence/>`)
	for i := 0; i < 5; i++ {
		el := b.expect("offline message", func(e *Element) bool { return e.Local == "message" })
		if got := el.ChildText(nsClient, "body"); got != fmt.Sprintf("offline %d", i) {
			t.Fatalf("message %d: got %q", i, got)
		}
		d := el.Child(nsDelay, "delay")
		if d == nil || d.Get("stamp") == "" || d.Get("from") != domain {
			t.Fatalf("no XEP-0203 delay: %s", el.Bytes(nsClient))
		}
	}
	b.none(300*time.Millisecond, "another message", func(e *Element) bool { return e.Local == "message" })
	msgs, _ := h.store.OfflineMessages(context.Background(), "bob@"+domain)
	if len(msgs) != 0 {
		t.Fatalf("%d offline messages left after delivery", len(msgs))
	}
}

func TestOfflineLimitBounces(t *testing.T) {
	h := newHarness(t) // OfflineLimit 50
	a := h.online("alice", "desk")
	for i := 0; i < 51; i++ {
		a.send(`<message type='chat' to='bob@example.test'><body>m%d</body></message>`, i)
	}
	el := a.expect("bounce", isStanza("message", "error"))
	if el.ChildText(nsClient, "body") != "m50" || !strings.Contains(el.Child(nsClient, "error").ChildText(nsStanzas, "text"), "too many messages waiting") {
		t.Fatalf("bounce: %s", el.Bytes(nsClient))
	}
}

func TestOfflineStoreFailureBounces(t *testing.T) {
	var faulty *storagetest.Faulty
	h := newHarness(t, withStore(func(s storage.Store) storage.Store {
		faulty = &storagetest.Faulty{Store: s, FailAfter: -1}
		return faulty
	}))
	a := h.online("alice", "desk")
	faulty.SetFailAfter(0)
	a.send(`<message type='chat' to='bob@example.test'><body>lost?</body></message>`)
	el := a.expect("bounce", isStanza("message", "error"))
	if stanzaErrorCond(el) != "internal-server-error" || el.ChildText(nsClient, "body") != "lost?" {
		t.Fatalf("store failure should bounce to the sender: %s", el.Bytes(nsClient))
	}
	// Healed, the next message is kept.
	faulty.SetFailAfter(-1)
	a.send(`<message type='chat' to='bob@example.test'><body>kept</body></message>`)
	a.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.expect("sync", isIQResult("sync"))
	b := h.login("bob", "desk")
	b.send(`<presence/>`)
	b.expect("kept", isChat("kept"))
}

func TestBareJIDRoutingByPriority(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	hi := h.login("bob", "hi")
	hi.send(`<presence><priority>5</priority></presence>`)
	hi.expect("own", presenceFrom(hi.jid, ""))
	lo := h.login("bob", "lo")
	lo.send(`<presence><priority>1</priority></presence>`)
	lo.expect("own", presenceFrom(lo.jid, ""))
	neg := h.login("bob", "neg")
	neg.send(`<presence><priority>-1</priority></presence>`)
	neg.expect("own", presenceFrom(neg.jid, ""))
	a.send(`<message type='chat' to='bob@example.test'><body>to bare</body></message>`)
	hi.expect("bare message", isChat("to bare"))
	// Full JID goes to exactly that resource, even a negative one.
	a.send(`<message type='chat' to='%s'><body>to neg</body></message>`, neg.jid)
	neg.expect("full message", isChat("to neg"))
	// Full JID of a resource that is gone: chat falls back to the bare JID.
	a.send(`<message type='chat' to='bob@example.test/gone'><body>fallback</body></message>`)
	hi.expect("fallback", isChat("fallback"))
	// normal to a missing full JID bounces.
	a.send(`<message to='bob@example.test/gone'><body>n</body></message>`)
	if el := a.expect("bounce", isStanza("message", "error")); stanzaErrorCond(el) != "service-unavailable" {
		t.Fatalf("normal to missing resource: %s", el.Bytes(nsClient))
	}
	// groupchat to a user bounces.
	a.send(`<message type='groupchat' to='bob@example.test'><body>g</body></message>`)
	if el := a.expect("bounce", isStanza("message", "error")); stanzaErrorCond(el) != "service-unavailable" {
		t.Fatalf("groupchat to user: %s", el.Bytes(nsClient))
	}
	lo.none(200*time.Millisecond, "a message", func(e *Element) bool { return e.Local == "message" })
}

func TestAliasFanout(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	c := h.online("carol", "desk")
	c2 := h.online("carol", "phone")
	a.send(`<message type='chat' to='sales@example.test' id='al'><body>quote needed</body><addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='evil@example.test'/></addresses></message>`)
	for _, cl := range []*client{b, c} {
		el := cl.expect("alias message", isChat("quote needed"))
		if el.Get("from") != a.jid {
			t.Fatalf("from %q, want the sender", el.Get("from"))
		}
		addrs := el.Child(nsAddress, "addresses")
		if addrs == nil || len(addrs.Elements()) != 2 || addrs.Elements()[0].Get("jid") != "sales@"+domain {
			t.Fatalf("alias marking: %s", el.Bytes(nsClient))
		}
		// The reply goes to the sender, not to the alias.
		cl.send(`<message type='chat' to='%s'><body>reply from %s</body></message>`, el.Get("from"), cl.jid)
		a.expect("reply", isChat("reply from "+cl.jid))
	}
	// Each member once: carol's two equal resources both show it, but the
	// sender never gets a copy of its own message.
	c2.expect("second resource", isChat("quote needed"))
	isMsg := func(e *Element) bool { return e.Local == "message" }
	a.none(200*time.Millisecond, "a copy of its own message", isMsg)
	b.none(100*time.Millisecond, "a second copy", isMsg)
}

func TestAliasNobodyOnline(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	a.send(`<message type='chat' to='sales@example.test'><body>anyone?</body></message>`)
	if el := a.expect("error", isStanza("message", "error")); stanzaErrorCond(el) != "recipient-unavailable" {
		t.Fatalf("alias with nobody online: %s", el.Bytes(nsClient))
	}
}

func TestDomainRosterAndPresence(t *testing.T) {
	h := newHarness(t)
	a := h.login("alice", "desk")
	a.send(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`)
	el := a.expect("roster", isIQResult("r"))
	q := el.Child(nsRoster, "query")
	var jids []string
	for _, it := range q.Elements() {
		jids = append(jids, it.Get("jid")+":"+it.Get("subscription"))
	}
	got := strings.Join(jids, " ")
	if got != "sales@example.test:both bob@example.test:both carol@example.test:both" {
		t.Fatalf("domain roster: %s", got)
	}
	if q.Elements()[0].ChildText(nsRoster, "group") != "Aliases" || q.Elements()[1].Get("name") != "Bob" {
		t.Fatalf("groups/names: %s", el.Bytes(nsClient))
	}
	ver := q.Get("ver")
	// Roster versioning: the same version gets an empty result.
	a.send(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster' ver='%s'/></iq>`, ver)
	if el := a.expect("versioned", isIQResult("r2")); el.Get("type") != "result" || el.Child(nsRoster, "query") != nil {
		t.Fatalf("unchanged roster should be an empty result: %s", el.Bytes(nsClient))
	}
	a.send(`<presence><show>away</show><status>lunch</status></presence>`)
	a.expect("own", presenceFrom(a.jid, ""))
	b := h.login("bob", "desk")
	b.send(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`)
	b.expect("roster", isIQResult("r"))
	b.send(`<presence/>`)
	// Bob sees Alice's current presence at login...
	pe := b.expect("alice's presence", presenceFrom("alice@", ""))
	if pe.ChildText(nsClient, "show") != "away" || pe.ChildText(nsClient, "status") != "lunch" {
		t.Fatalf("probe result: %s", pe.Bytes(nsClient))
	}
	// ...and Alice sees Bob come online.
	a.expect("bob online", presenceFrom("bob@", ""))
	// A second Alice resource going offline does not change the first.
	a2 := h.online("alice", "phone")
	b.expect("alice phone", presenceFrom(a2.jid, ""))
	a2.send(`<presence type='unavailable'/>`)
	el = b.expect("alice phone offline", presenceFrom(a2.jid, "unavailable"))
	_ = el
	a.send(`<presence><show>dnd</show></presence>`)
	pe = b.expect("alice dnd", presenceFrom(a.jid, ""))
	if pe.ChildText(nsClient, "show") != "dnd" {
		t.Fatalf("update: %s", pe.Bytes(nsClient))
	}
	// Abrupt TCP loss: Bob sees Alice go offline.
	a.conn.Close()
	b.expect("alice gone", presenceFrom(a.jid, "unavailable"))
	// Dave is not chat-enabled: not in the roster, not reachable.
	b.send(`<message type='chat' to='dave@example.test'><body>x</body></message>`)
	if el := b.expect("dave", isStanza("message", "error")); stanzaErrorCond(el) != "service-unavailable" {
		t.Fatalf("dave: %s", el.Bytes(nsClient))
	}
}

func TestDeadConnectionDetectedByPing(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *roster.Config) {
		c.IdleTimeout = 300 * time.Millisecond
		c.PingTimeout = 300 * time.Millisecond
	})
	b := h.online("bob", "desk")
	a := h.online("alice", "desk")
	b.expect("alice online", presenceFrom(a.jid, ""))
	// Alice's client stops reading and answering: stop its reader by
	// never answering pings (read raw, do not auto-answer).
	// From here on nobody reads Alice's stream, so her pings go unanswered.
	start := time.Now()
	b.expect("alice timed out", presenceFrom(a.jid, "unavailable"))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s to notice a dead client", d)
	}
}

func TestSubscriptionsWithoutDomainRoster(t *testing.T) {
	h := newHarness(t, noDomainRoster)
	a := h.online("alice", "desk")
	// Alice adds Bob with a group, and asks for his presence while he is
	// offline; the request waits for him.
	a.send(`<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='bob@example.test' name='Bobby'><group>Work</group></item></query></iq>`)
	a.expect("set result", isIQResult("add"))
	push := a.expect("push", func(e *Element) bool { return e.Local == "iq" && e.Get("type") == "set" })
	it := push.Child(nsRoster, "query").FirstChild()
	if it.Get("jid") != "bob@example.test" || it.Get("subscription") != "none" || it.ChildText(nsRoster, "group") != "Work" {
		t.Fatalf("push: %s", push.Bytes(nsClient))
	}
	a.send(`<presence type='subscribe' to='bob@example.test'><status>it's alice</status></presence>`)
	push = a.expect("ask push", func(e *Element) bool {
		return e.Local == "iq" && e.Get("type") == "set" && e.Child(nsRoster, "query").FirstChild().Get("ask") == "subscribe"
	})
	b := h.login("bob", "desk")
	b.send(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`)
	if el := b.expect("roster", isIQResult("r")); len(el.Child(nsRoster, "query").Elements()) != 0 {
		t.Fatalf("a pending request must not add a roster item: %s", el.Bytes(nsClient))
	}
	b.send(`<presence/>`)
	req := b.expect("pending subscribe", isStanza("presence", "subscribe"))
	if req.Get("from") != "alice@example.test" || req.ChildText(nsClient, "status") != "it's alice" {
		t.Fatalf("request: %s", req.Bytes(nsClient))
	}
	b.send(`<presence type='subscribed' to='alice@example.test'/>`)
	// Alice learns of the approval, gets a push with subscription to, and
	// sees Bob's presence.
	a.expectAll("approval", isStanza("presence", "subscribed"), func(e *Element) bool {
		return e.Local == "iq" && e.Get("type") == "set" && e.Child(nsRoster, "query").FirstChild().Get("subscription") == "to"
	}, presenceFrom("bob@", ""))
	// Bob's presence changes reach Alice; Alice's do not reach Bob.
	b.send(`<presence><show>xa</show></presence>`)
	if el := a.expect("bob xa", presenceFrom("bob@", "")); el.ChildText(nsClient, "show") != "xa" {
		t.Fatalf("update: %s", el.Bytes(nsClient))
	}
	a.send(`<presence><show>chat</show></presence>`)
	a.expect("own", func(e *Element) bool { return e.Local == "presence" && e.ChildText(nsClient, "show") == "chat" })
	b.none(300*time.Millisecond, "alice's presence", presenceFrom("alice@", ""))
}

func TestPreApproval(t *testing.T) {
	h := newHarness(t, noDomainRoster)
	b := h.online("bob", "desk")
	// Bob pre-approves Alice (RFC 6121 3.4).
	b.send(`<presence type='subscribed' to='alice@example.test'/>`)
	b.expect("approved push", func(e *Element) bool {
		return e.Local == "iq" && e.Get("type") == "set" && e.Child(nsRoster, "query").FirstChild().Get("approved") == "true"
	})
	a := h.online("alice", "desk")
	a.send(`<presence type='subscribe' to='bob@example.test'/>`)
	a.expect("auto-approved", isStanza("presence", "subscribed"))
	a.expect("bob's presence", presenceFrom(b.jid, ""))
}

func TestDirectedPresence(t *testing.T) {
	h := newHarness(t, noDomainRoster)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	a.send(`<presence to='%s'><status>psst</status></presence>`, b.jid)
	if el := b.expect("directed", presenceFrom(a.jid, "")); el.ChildText(nsClient, "status") != "psst" {
		t.Fatalf("directed: %s", el.Bytes(nsClient))
	}
	a.send(`<presence type='unavailable'/>`)
	b.expect("unavailable to directed target", presenceFrom(a.jid, "unavailable"))
}

func TestRosterSetErrors(t *testing.T) {
	h := newHarness(t, noDomainRoster)
	a := h.online("alice", "desk")
	cases := []struct{ item, cond string }{
		{`<item jid='bob@example.test'><group></group></item>`, "not-acceptable"},
		{`<item jid='bob@example.test'><group>A</group><group>A</group></item>`, "bad-request"},
		{`<item jid='bob@example.test'/><item jid='carol@example.test'/>`, "bad-request"},
		{`<item jid='a@b@c'/>`, "jid-malformed"},
		{`<item jid='alice@example.test'/>`, "not-allowed"},
		{`<item jid='carol@example.test' subscription='remove'/>`, "item-not-found"},
	}
	for i, tc := range cases {
		id := fmt.Sprintf("e%d", i)
		a.send(`<iq type='set' id='%s'><query xmlns='jabber:iq:roster'>%s</query></iq>`, id, tc.item)
		if el := a.expect(id, isIQResult(id)); stanzaErrorCond(el) != tc.cond {
			t.Errorf("%s: want %s, got %s", tc.item, tc.cond, el.Bytes(nsClient))
		}
	}
}

func TestRosterRemoveUnsubscribes(t *testing.T) {
	h := newHarness(t, noDomainRoster)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	b.send(`<presence type='subscribed' to='alice@example.test'/>`) // pre-approve
	a.send(`<presence type='subscribe' to='bob@example.test'/>`)
	a.expect("bob's presence", presenceFrom(b.jid, ""))
	a.send(`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@example.test' subscription='remove'/></query></iq>`)
	a.expect("removed", isIQResult("rm"))
	a.expect("remove push", func(e *Element) bool {
		return e.Local == "iq" && e.Get("type") == "set" && e.Child(nsRoster, "query").FirstChild().Get("subscription") == "remove"
	})
	// Bob's roster loses 'from': a push with subscription none.
	b.expect("bob push", func(e *Element) bool {
		if e.Local != "iq" || e.Get("type") != "set" {
			return false
		}
		it := e.Child(nsRoster, "query").FirstChild()
		return it.Get("jid") == "alice@example.test" && it.Get("subscription") == "none"
	})
}

func TestShutdownFlushesAndSaysSo(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	for i := 0; i < 200; i++ {
		a.send(`<message type='chat' to='bob@example.test'><body>burst %d</body></message>`, i)
	}
	a.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.expect("sync", isIQResult("sync"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		el, err := b.read(2 * time.Second)
		if err != nil {
			t.Fatalf("stream ended without system-shutdown after %d messages: %v", got, err)
		}
		if el.Local == "message" {
			if el.ChildText(nsClient, "body") != fmt.Sprintf("burst %d", got) {
				t.Fatalf("message %d: %s", got, el.Bytes(nsClient))
			}
			got++
			continue
		}
		if el.Local == "error" && el.Child(nsStreams, "system-shutdown") != nil {
			break
		}
	}
	if got != 200 {
		t.Fatalf("got %d of 200 messages before shutdown", got)
	}
}

func TestTwoServersInOneProcess(t *testing.T) {
	h1 := newHarness(t)
	h2 := newHarness(t)
	a1 := h1.online("alice", "one")
	a2 := h2.online("alice", "two")
	b1 := h1.online("bob", "one")
	b1.expect("alice on server 1", presenceFrom(a1.jid, ""))
	a2.quiet(200 * time.Millisecond)
}
