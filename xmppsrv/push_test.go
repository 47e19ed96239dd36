package xmppsrv

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/muc"
	"github.com/parleyhq/parley/roster"
)

func pushHarness(t *testing.T, cfg PushConfig, opts ...any) *harness {
	h := pepHarness(t, opts...)
	h.srv.Extend(nil, []AccountHandler{NewPush(h.srv, cfg)})
	return h
}

func isPushNotification(e *Element) bool {
	ps := e.Child(nsPubsub, "pubsub")
	return e.Local == "iq" && e.Get("type") == "set" && ps != nil && ps.Child(nsPubsub, "publish") != nil
}

// summary returns the urn:xmpp:push:summary fields of a notification.
func summary(t *testing.T, iq *Element) map[string]string {
	t.Helper()
	pub := iq.Child(nsPubsub, "pubsub").Child(nsPubsub, "publish")
	n := pub.Child(nsPubsub, "item").Child(nsPush, "notification")
	if n == nil {
		t.Fatalf("no notification: %s", iq.Bytes(nsClient))
	}
	x := n.Child(nsXData, "x")
	out := map[string]string{}
	for k, v := range formValues(x) {
		out[k] = strings.Join(v, ",")
	}
	if out["FORM_TYPE"] != nsPushSummary {
		t.Fatalf("FORM_TYPE: %s", iq.Bytes(nsClient))
	}
	return out
}

// XEP-0357: a phone enables push with publish-options; while it is
// offline, and while its session waits detached for resumption, each
// message makes a notification from the user's bare JID to the app
// server, counted, with the sender and without the text; while it is
// connected, none. An app server's cancel error disables the registration.
func TestPushNotifications(t *testing.T) {
	h := pushHarness(t, PushConfig{}, withArchive, func(c *Config, _ *roster.Config) { c.ResumeTimeout = time.Minute })
	app := h.online("carol", "appserver") // plays the app server
	bob := h.online("bob", "desk")
	phone := h.online("alice", "phone")

	info := ok(t, phone.iq("get", "alice@example.test", `<query xmlns='http://jabber.org/protocol/disco#info'/>`))
	if !strings.Contains(string(info.Bytes(nsClient)), `var="urn:xmpp:push:0"`) {
		t.Fatalf("account disco lacks urn:xmpp:push:0: %s", info.Bytes(nsClient))
	}
	// Bad requests.
	for _, bad := range []struct{ payload, cond string }{
		{`<enable xmlns='urn:xmpp:push:0' node='n'/>`, "bad-request"},
		{`<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver'/>`, "bad-request"},
		{`<enable xmlns='urn:xmpp:push:0' jid='carol@example.test' node='n'/>`, "not-acceptable"},
		{`<enable xmlns='urn:xmpp:push:0' jid='@@' node='n'/>`, "jid-malformed"},
		{`<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>other</value></field></x></enable>`, "bad-request"},
	} {
		if cond, _ := pubsubError(phone.iq("set", "", bad.payload)); cond != bad.cond {
			t.Errorf("%s: got %q, want %q", bad.payload, cond, bad.cond)
		}
	}
	ok(t, phone.iq("set", "", `<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver' node='yxs32u'>
		<x xmlns='jabber:x:data' type='submit'>
		<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
		<field var='secret'><value>eruio234vzxc2kla-91</value></field></x></enable>`))
	stored, err := h.store.UserData(context.Background(), "alice@example.test", "push")
	if err != nil || !strings.Contains(string(stored), "yxs32u") {
		t.Fatalf("registration not stored: %q %v", stored, err)
	}

	// Connected: no notification.
	bob.send(`<message type='chat' to='alice@example.test' id='m0'><body>are you there?</body></message>`)
	phone.expect("live message", isChat("are you there?"))
	app.none(300*time.Millisecond, "a notification for a connected device", isPushNotification)

	// The phone's connection drops with resumption on: its session is held
	// detached, the message is queued for it, and the app server is told.
	smEnable(t, phone)
	phone.conn.Close()
	waitDetached(t, h, phone.jid)
	bob.send(`<message type='chat' to='alice@example.test' id='m1'><body>secret text</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	iq := app.expect("notification", isPushNotification)
	if iq.Get("from") != "alice@example.test" || iq.Get("to") != app.jid {
		t.Fatalf("notification addressing: %s", iq.Bytes(nsClient))
	}
	pub := iq.Child(nsPubsub, "pubsub").Child(nsPubsub, "publish")
	if pub.Get("node") != "yxs32u" {
		t.Fatalf("node: %s", iq.Bytes(nsClient))
	}
	opts := iq.Child(nsPubsub, "pubsub").Child(nsPubsub, "publish-options")
	if opts == nil || formValues(opts.Child(nsXData, "x"))["secret"][0] != "eruio234vzxc2kla-91" {
		t.Fatalf("publish-options not passed on: %s", iq.Bytes(nsClient))
	}
	sum := summary(t, iq)
	if sum["message-count"] != "1" || sum["last-message-sender"] != "bob@example.test" {
		t.Fatalf("summary: %v", sum)
	}
	if _, ok := sum["last-message-body"]; ok {
		t.Fatalf("the body went to the app server although WithBody is off: %v", sum)
	}
	app.send(`<iq type='result' id='%s' to='alice@example.test'/>`, iq.Get("id"))
	// A chat state alone wakes nobody.
	bob.send(`<message type='chat' to='alice@example.test'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	app.none(300*time.Millisecond, "a notification for a chat state", isPushNotification)
	bob.send(`<message type='chat' to='alice@example.test' id='m2'><body>second</body></message>`)
	iq = app.expect("second notification", isPushNotification)
	if sum := summary(t, iq); sum["message-count"] != "2" {
		t.Fatalf("count: %v", sum)
	}
	// The app server says the node is gone: the registration is disabled.
	app.send(`<iq type='error' id='%s' to='alice@example.test'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, iq.Get("id"))
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := h.store.UserData(context.Background(), "alice@example.test", "push")
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the registration survived a cancel error")
		}
		time.Sleep(20 * time.Millisecond)
	}
	bob.send(`<message type='chat' to='alice@example.test' id='m3'><body>third</body></message>`)
	app.none(300*time.Millisecond, "a notification after the app server refused", isPushNotification)
}

// With WithBody, an offline user's device gets the text; a wait error
// keeps the registration; disable without a node removes all of the app
// server's registrations.
func TestPushOfflineWithBodyAndDisable(t *testing.T) {
	h := pushHarness(t, PushConfig{WithBody: true}, withArchive)
	app := h.online("carol", "appserver")
	bob := h.online("bob", "desk")
	phone := h.login("alice", "phone")
	ok(t, phone.iq("set", "", `<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver' node='n1'/>`))
	ok(t, phone.iq("set", "", `<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver' node='n2'/>`))
	phone.send(`</stream:stream>`)
	phone.conn.Close()
	waitGone(t, h, phone.jid)

	bob.send(`<message type='chat' to='alice@example.test'><body>hello offline</body></message>`)
	nodes := map[string]bool{}
	for range 2 {
		iq := app.expect("notification", isPushNotification)
		nodes[iq.Child(nsPubsub, "pubsub").Child(nsPubsub, "publish").Get("node")] = true
		if sum := summary(t, iq); sum["last-message-body"] != "hello offline" || sum["message-count"] != "1" {
			t.Fatalf("summary: %v", sum)
		}
		app.send(`<iq type='error' id='%s' to='alice@example.test'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, iq.Get("id"))
	}
	if !nodes["n1"] || !nodes["n2"] {
		t.Fatalf("nodes notified: %v", nodes)
	}
	// Encrypted messages never give their text.
	bob.send(`<message type='chat' to='alice@example.test'><body>I sent you an OMEMO encrypted message</body><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted></message>`)
	for range 2 {
		iq := app.expect("notification", isPushNotification)
		if sum := summary(t, iq); sum["last-message-body"] != "" || sum["message-count"] != "2" {
			t.Fatalf("encrypted: %v", sum)
		}
	}
	// The wait errors kept the registrations; now disable them all.
	c := h.login("alice", "tablet")
	var regs []pushReg
	b, _ := h.store.UserData(context.Background(), "alice@example.test", "push")
	if json.Unmarshal(b, &regs); len(regs) != 2 {
		t.Fatalf("registrations after wait errors: %s", b)
	}
	ok(t, c.iq("set", "", `<disable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver'/>`))
	if _, err := h.store.UserData(context.Background(), "alice@example.test", "push"); err == nil {
		t.Fatal("disable left registrations in the store")
	}
}

func waitDetached(t *testing.T, h *harness, full string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range h.srv.router.Resources(strings.SplitN(full, "/", 2)[0]) {
			if s.full.String() == full {
				s.sm.mu.Lock()
				d := s.sm.detached != nil
				s.sm.mu.Unlock()
				if d {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never detached", full)
}

func waitGone(t *testing.T, h *harness, full string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		found := false
		for _, s := range h.srv.router.Resources(strings.SplitN(full, "/", 2)[0]) {
			found = found || s.full.String() == full
		}
		if !found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never left", full)
}

// A subscription request to a user whose phone is offline is a
// notifiable event too: pending-subscription-count.
func TestPushSubscriptionRequest(t *testing.T) {
	h := pushHarness(t, PushConfig{}, noDomainRoster)
	app := h.online("carol", "appserver")
	bob := h.online("bob", "desk")
	phone := h.login("alice", "phone")
	ok(t, phone.iq("set", "", `<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver' node='n1'/>`))
	phone.send(`</stream:stream>`)
	phone.conn.Close()
	waitGone(t, h, phone.jid)
	bob.send(`<presence type='subscribe' to='alice@example.test'/>`)
	iq := app.expect("notification", isPushNotification)
	sum := summary(t, iq)
	if sum["pending-subscription-count"] != "1" || sum["message-count"] != "0" {
		t.Fatalf("summary: %v", sum)
	}
	if _, ok := sum["last-message-sender"]; ok {
		t.Fatalf("a subscription request named as a message sender: %v", sum)
	}
}

// An app server on another domain that cannot be reached (here: no
// federation) answers nothing about the registration: it stays.
func TestPushRemoteUnreachableKeepsRegistration(t *testing.T) {
	h := pushHarness(t, PushConfig{})
	bob := h.online("bob", "desk")
	phone := h.login("alice", "phone")
	ok(t, phone.iq("set", "", `<enable xmlns='urn:xmpp:push:0' jid='push.elsewhere.test' node='n1'/>`))
	phone.send(`</stream:stream>`)
	phone.conn.Close()
	waitGone(t, h, phone.jid)
	bob.send(`<message type='chat' to='alice@example.test'><body>hello</body></message>`)
	time.Sleep(500 * time.Millisecond)
	if b, err := h.store.UserData(context.Background(), "alice@example.test", "push"); err != nil || !strings.Contains(string(b), "push.elsewhere.test") {
		t.Fatalf("the registration was dropped for an unreachable app server: %q %v", b, err)
	}
}

// A room message to an occupant whose phone session waits detached for
// resumption wakes that phone (XEP-0357 with XEP-0045), once per message
// with a body; the room's subject and a connected device do not.
func TestPushGroupchatToDetachedOccupant(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{}, func(c *Config, _ *roster.Config) { c.ResumeTimeout = time.Minute })
	h.srv.Extend(nil, []AccountHandler{NewPush(h.srv, PushConfig{})})
	app := h.online("carol", "appserver")
	bob := h.online("bob", "desk")
	phone := h.online("alice", "phone")
	laptop := h.online("alice", "laptop")
	ok(t, phone.iq("set", "", `<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver' node='phone-node'/>`))
	ok(t, laptop.iq("set", "", `<enable xmlns='urn:xmpp:push:0' jid='carol@example.test/appserver' node='laptop-node'/>`))
	const room = "orchard@conference.example.test"
	mucCreate(bob, room, "Bob")
	mucJoin(phone, room, "AlicePhone", "")
	bob.send(`<message type='groupchat' to='%s' id='g0'><body>while you look</body></message>`, room)
	phone.expect("live room message", isGroupchat("while you look"))
	app.none(300*time.Millisecond, "a notification for a connected occupant", isPushNotification)

	smEnable(t, phone)
	phone.conn.Close()
	waitDetached(t, h, phone.jid)
	bob.send(`<message type='groupchat' to='%s' id='g1'><body>are you coming?</body></message>`, room)
	iq := app.expect("notification", isPushNotification)
	if node := iq.Child(nsPubsub, "pubsub").Child(nsPubsub, "publish").Get("node"); node != "phone-node" {
		t.Fatalf("notified node %q, want the phone's: %s", node, iq.Bytes(nsClient))
	}
	if sum := summary(t, iq); sum["message-count"] != "1" || sum["last-message-sender"] != room {
		t.Fatalf("summary: %v", sum)
	}
	app.send(`<iq type='result' id='%s' to='alice@example.test'/>`, iq.Get("id"))
	// The laptop is not in the room; it is not woken for it.
	app.none(300*time.Millisecond, "a notification for the laptop, which is not in the room", isPushNotification)
	bob.send(`<message type='groupchat' to='%s'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, room)
	app.none(300*time.Millisecond, "a notification for a chat state in the room", isPushNotification)
}
