package xmppsrv

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage"
)

// withArchive turns history on, over the harness's store.
var withArchive = archiveOn{}

// mamPage runs one MAM query and returns the archived bodies, their ids,
// and the fin element.
func mamPage(t *testing.T, c *client, id, form, rsm string) (bodies, ids []string, fin *Element) {
	t.Helper()
	c.send(`<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='q-%s'>%s%s</query></iq>`, id, id, form, rsm)
	for {
		el := c.expect("mam", func(e *Element) bool {
			return (e.Local == "message" && e.Child(nsMAM, "result") != nil) || (e.Local == "iq" && e.Get("id") == id)
		})
		if el.Local == "iq" {
			if el.Get("type") != "result" {
				return nil, nil, el
			}
			return bodies, ids, el.Child(nsMAM, "fin")
		}
		res := el.Child(nsMAM, "result")
		if res.Get("queryid") != "q-"+id {
			t.Fatalf("queryid: %s", el.Bytes(nsClient))
		}
		fw := res.Child(nsForward, "forwarded")
		if fw.Child(nsDelay, "delay") == nil {
			t.Fatalf("no delay in forwarded: %s", el.Bytes(nsClient))
		}
		bodies = append(bodies, fw.Child(nsClient, "message").ChildText(nsClient, "body"))
		ids = append(ids, res.Get("id"))
	}
}

func TestArchiveStanzaIDAndMAMPaging(t *testing.T) {
	h := newHarness(t, withArchive)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	var bobIDs []string
	for i := 0; i < 30; i++ {
		a.send(`<message type='chat' to='bob@example.test' id='c%d'><body>msg %02d</body><stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='bob@example.test'/></message>`, i, i)
		el := b.expect("message", isChat(fmt.Sprintf("msg %02d", i)))
		sids := 0
		for _, c := range el.Elements() {
			if c.Space == nsSID && c.Local == "stanza-id" {
				sids++
				if c.Get("by") != "bob@example.test" || c.Get("id") == "forged" {
					t.Fatalf("stanza-id: %s", el.Bytes(nsClient))
				}
				bobIDs = append(bobIDs, c.Get("id"))
			}
		}
		if sids != 1 {
			t.Fatalf("want exactly one stanza-id (the forged one removed): %s", el.Bytes(nsClient))
		}
	}
	// A chat state is routed, not archived.
	a.send(`<message type='chat' to='bob@example.test'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	b.expect("chat state", func(e *Element) bool { return e.Child(nsChatStat, "composing") != nil })

	// Page from the end, 10 at a time, as a client scrolling up does.
	var all []string
	before := "<before/>"
	for page := 0; ; page++ {
		bodies, ids, fin := mamPage(t, a, fmt.Sprintf("p%d", page), "", "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max>"+before+"</set>")
		if fin == nil {
			t.Fatal("no fin")
		}
		all = append(bodies, all...)
		if fin.Get("complete") == "true" {
			break
		}
		if page > 5 || len(ids) == 0 {
			t.Fatalf("paging did not end: page %d, fin %s", page, fin.Bytes(nsMAM))
		}
		if first := fin.Child(nsRSM, "set").ChildText(nsRSM, "first"); first != ids[0] {
			t.Fatalf("rsm first %q, want %q", first, ids[0])
		}
		before = "<before>" + ids[0] + "</before>"
	}
	if len(all) != 30 {
		t.Fatalf("got %d messages, want 30: %v", len(all), all)
	}
	for i, body := range all {
		if body != fmt.Sprintf("msg %02d", i) {
			t.Fatalf("message %d is %q: gap or duplicate", i, body)
		}
	}
	// Bob's archive has the same ids his client saw.
	_, ids, _ := mamPage(t, b, "bob", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set>")
	if strings.Join(ids, ",") != strings.Join(bobIDs, ",") {
		t.Fatalf("bob's archive ids differ from the stanza-ids he got")
	}
	// Filters: with, full-text (XEP-0431), after-id.
	form := func(fields string) string {
		return `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` + fields + `</x>`
	}
	bodies, _, _ := mamPage(t, a, "ft", form(`<field var='{urn:xmpp:fulltext:0}fulltext'><value>17</value></field>`), "")
	if len(bodies) != 1 || bodies[0] != "msg 17" {
		t.Fatalf("full-text: %v", bodies)
	}
	bodies, _, _ = mamPage(t, a, "w", form(`<field var='with'><value>carol@example.test</value></field>`), "")
	if len(bodies) != 0 {
		t.Fatalf("with carol: %v", bodies)
	}
	bodies, _, fin := mamPage(t, a, "after", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>5</max><after>"+bobIDs[27]+"</after></set>")
	if strings.Join(bodies, ",") != "msg 28,msg 29" || fin.Get("complete") != "true" {
		t.Fatalf("after: %v %s", bodies, fin.Bytes(nsMAM))
	}
	_, _, errEl := mamPage(t, a, "unknown", "", "<set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set>")
	if stanzaErrorCond(errEl) != "item-not-found" {
		t.Fatalf("unknown id: %s", errEl.Bytes(nsClient))
	}
	_, _, errEl = mamPage(t, a, "badstart", form(`<field var='start'><value>yesterday</value></field>`), "")
	if stanzaErrorCond(errEl) != "bad-request" {
		t.Fatalf("bad start: %s", errEl.Bytes(nsClient))
	}
}

func TestReceiptStoredWithMessage(t *testing.T) {
	h := newHarness(t, withArchive)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	a.send(`<message type='chat' to='bob@example.test' id='m1'><body>did you get it?</body><request xmlns='urn:xmpp:receipts'/></message>`)
	b.expect("message", isChat("did you get it?"))
	b.send(`<message type='chat' to='%s'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`, a.jid)
	a.expect("receipt", func(e *Element) bool { return e.Child(nsReceipts, "received") != nil })
	b.send(`<message type='chat' to='%s'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`, a.jid)
	a.expect("marker", func(e *Element) bool { return e.Child(nsMarkers, "displayed") != nil })
	for _, owner := range []string{"alice@example.test", "bob@example.test"} {
		// Recorded off the delivery path: give it a moment.
		var state uint8
		for i := 0; i < 100 && state != chat.StateDisplayed; i++ {
			msgs, _, err := h.store.(storage.Archive).QueryMessages(t.Context(), owner, storage.ArchiveQuery{})
			if err != nil || len(msgs) != 1 {
				t.Fatalf("%s archive: %v %v", owner, msgs, err)
			}
			state = msgs[0].State
			time.Sleep(10 * time.Millisecond)
		}
		if state != chat.StateDisplayed {
			t.Fatalf("%s: state %d, want displayed", owner, state)
		}
	}
}

// TestOfflineKeepsStanzaID: a message archived and stored offline comes
// with the stanza-id of the recipient's archive, as a delivered one does.
func TestOfflineKeepsStanzaID(t *testing.T) {
	h := newHarness(t, withArchive)
	a := h.online("alice", "desk")
	a.send(`<message type='chat' to='bob@example.test'><body>while away</body></message>`)
	a.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.expect("sync", isIQResult("sync"))
	b := h.login("bob", "phone")
	b.send(`<presence/>`)
	el := b.expect("offline message", isChat("while away"))
	if sid := el.Child(nsSID, "stanza-id"); sid == nil || sid.Get("by") != "bob@example.test" || sid.Get("id") == "" || el.Child(nsDelay, "delay") == nil {
		t.Fatalf("offline message without bob's stanza-id or delay: %s", el.Bytes(nsClient))
	}
}

func TestCarbons(t *testing.T) {
	h := newHarness(t, withArchive)
	desk := h.online("alice", "desk")
	phone := h.login("alice", "phone")
	phone.send(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`)
	phone.expect("roster", isIQResult("r"))
	phone.send(`<presence><priority>-1</priority></presence>`)
	phone.expect("own", presenceFrom(phone.jid, ""))
	for _, c := range []*client{desk, phone} {
		c.send(`<iq type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
		if el := c.expect("carbons", isIQResult("cb")); el.Get("type") != "result" {
			t.Fatalf("enable: %s", el.Bytes(nsClient))
		}
	}
	b := h.online("bob", "desk")
	// Bob writes to alice's bare JID: desk (priority 0) gets it, the phone
	// (negative priority) a received carbon.
	b.send(`<message type='chat' to='alice@example.test'><body>hi alice</body></message>`)
	desk.expect("direct", isChat("hi alice"))
	el := phone.expect("received carbon", func(e *Element) bool { return e.Child(nsCarbons, "received") != nil })
	fw := el.Child(nsCarbons, "received").Child(nsForward, "forwarded").Child(nsClient, "message")
	if el.Get("from") != "alice@example.test" || fw.ChildText(nsClient, "body") != "hi alice" || fw.Child(nsSID, "stanza-id") == nil {
		t.Fatalf("received carbon: %s", el.Bytes(nsClient))
	}
	// Alice answers from the desk: the phone gets a sent carbon.
	desk.send(`<message type='chat' to='bob@example.test'><body>hi bob</body></message>`)
	b.expect("reply", isChat("hi bob"))
	el = phone.expect("sent carbon", func(e *Element) bool { return e.Child(nsCarbons, "sent") != nil })
	if fw := el.Child(nsCarbons, "sent").Child(nsForward, "forwarded").Child(nsClient, "message"); fw.ChildText(nsClient, "body") != "hi bob" ||
		fw.Child(nsSID, "stanza-id") == nil || fw.Child(nsSID, "stanza-id").Get("by") != "alice@example.test" {
		t.Fatalf("sent carbon (with alice's stanza-id): %s", el.Bytes(nsClient))
	}
	// A private message is not copied.
	desk.send(`<message type='chat' to='bob@example.test'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>`)
	b.expect("private", isChat("secret"))
	phone.none(300*time.Millisecond, "a carbon of a private message", func(e *Element) bool { return e.Child(nsCarbons, "sent") != nil })
}

func TestClientStateIndication(t *testing.T) {
	h := newHarness(t)
	b := h.online("bob", "desk")
	a := h.online("alice", "desk")
	b.expect("alice online", presenceFrom(a.jid, ""))
	b.send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	b.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	b.expect("sync", isIQResult("sync")) // the server has read <inactive/>
	a.send(`<message type='chat' to='bob@example.test'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	a.send(`<presence><show>away</show></presence>`)
	a.send(`<presence><show>dnd</show></presence>`)
	// A real message still arrives at once.
	a.send(`<message type='chat' to='bob@example.test'><body>urgent</body></message>`)
	b.expect("urgent", isChat("urgent"))
	b.none(300*time.Millisecond, "held presence or a chat state", func(e *Element) bool {
		return (e.Local == "presence" && strings.HasPrefix(e.Get("from"), "alice@")) || e.Child(nsChatStat, "composing") != nil
	})
	b.send(`<active xmlns='urn:xmpp:csi:0'/>`)
	el := b.expect("latest presence", presenceFrom(a.jid, ""))
	if el.ChildText(nsClient, "show") != "dnd" {
		t.Fatalf("after active, want only the latest presence (dnd), got %s", el.Bytes(nsClient))
	}
	b.none(200*time.Millisecond, "the older presence", presenceFrom(a.jid, ""))
}

// smClient enables stream management and counts stanzas as a client does.
func smEnable(t *testing.T, c *client) string {
	t.Helper()
	c.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	el := c.expect("enabled", func(e *Element) bool { return e.Space == nsSM && e.Local == "enabled" })
	if el.Get("id") == "" || el.Get("resume") != "true" {
		t.Fatalf("enabled: %s", el.Bytes(""))
	}
	return el.Get("id")
}

func TestStreamResumptionLosesNothing(t *testing.T) {
	h := newHarness(t, withArchive)
	a := h.online("alice", "desk")
	b := h.online("bob", "phone")
	id := smEnable(t, b)
	a.expect("bob online", presenceFrom(b.jid, ""))
	// Bob receives two messages and acknowledges them.
	for i := 0; i < 2; i++ {
		a.send(`<message type='chat' to='bob@example.test'><body>before %d</body></message>`, i)
		b.expect("message", isChat(fmt.Sprintf("before %d", i)))
	}
	b.send(`<a xmlns='urn:xmpp:sm:3' h='2'/>`)
	// Then his connection drops mid-conversation; more messages are sent.
	b.conn.Close()
	for i := 0; i < 5; i++ {
		a.send(`<message type='chat' to='bob@example.test'><body>during %d</body></message>`, i)
	}
	a.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.expect("sync", isIQResult("sync"))
	// Alice did not see Bob go offline.
	a.none(200*time.Millisecond, "bob unavailable", presenceFrom(b.jid, "unavailable"))
	// Bob resumes on a new connection.
	c := h.dial()
	c.open()
	c.starttls()
	if el := c.authPlain("bob", "pw-bob"); el.Local != "success" {
		t.Fatalf("login: %s", el.Bytes(""))
	}
	c.open()
	c.send(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='2'/>`, id)
	el := c.next()
	if el.Local != "resumed" || el.Get("previd") != id {
		t.Fatalf("resume: %s", el.Bytes(""))
	}
	c.jid = b.jid
	c.startReader()
	for i := 0; i < 5; i++ {
		c.expect("replayed", isChat(fmt.Sprintf("during %d", i)))
	}
	// The resumed session is routable as before.
	a.send(`<message type='chat' to='%s'><body>after</body></message>`, b.jid)
	c.expect("after", isChat("after"))
	if msgs, _ := h.store.OfflineMessages(t.Context(), "bob@example.test"); len(msgs) != 0 {
		t.Fatalf("%d messages went offline although the stream resumed", len(msgs))
	}
}

func TestFailedResumptionGoesOffline(t *testing.T) {
	h := newHarness(t, withArchive, func(c *Config, _ *roster.Config) { c.ResumeTimeout = 1500 * time.Millisecond })
	a := h.online("alice", "desk")
	b := h.online("bob", "phone")
	smEnable(t, b)
	a.expect("bob online", presenceFrom(b.jid, ""))
	b.conn.Close() // never acknowledges anything
	sentAt := time.Now()
	for i := 0; i < 3; i++ {
		a.send(`<message type='chat' to='bob@example.test'><body>lost? %d</body></message>`, i)
	}
	a.expect("bob gone after the resumption window", presenceFrom(b.jid, "unavailable"))
	c := h.login("bob", "phone")
	c.send(`<presence/>`)
	for i := 0; i < 3; i++ {
		el := c.expect("kept offline", isChat(fmt.Sprintf("lost? %d", i)))
		d := el.Child(nsDelay, "delay")
		if d == nil {
			t.Fatalf("no delay stamp: %s", el.Bytes(nsClient))
		}
		// Stamped when the server got it, not when the window ran out.
		if st, err := time.Parse(time.RFC3339Nano, d.Get("stamp")); err != nil || st.Sub(sentAt) > time.Second {
			t.Fatalf("stamp %q is not the receive time (sent %s)", d.Get("stamp"), sentAt.UTC())
		}
	}
}

func TestFreshLoginTakesOverWaitingSession(t *testing.T) {
	h := newHarness(t, withArchive)
	a := h.online("alice", "desk")
	b := h.online("bob", "phone")
	smEnable(t, b)
	a.expect("bob online", presenceFrom(b.jid, ""))
	b.conn.Close()
	for i := 0; i < 3; i++ {
		a.send(`<message type='chat' to='bob@example.test'><body>meanwhile %d</body></message>`, i)
	}
	a.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.expect("sync", isIQResult("sync"))
	// Bob's phone logs in again with the same resource instead of resuming.
	c := h.login("bob", "phone")
	c.send(`<presence/>`)
	for i := 0; i < 3; i++ {
		c.expect("handed over", isChat(fmt.Sprintf("meanwhile %d", i)))
	}
	a.none(500*time.Millisecond, "bob reported offline although he is back", presenceFrom(b.jid, "unavailable"))
}
