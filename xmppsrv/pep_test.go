package xmppsrv

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// pepHarness is a harness with the account services (PEP, private
// storage, blocking) registered, as parley.Server does.
func pepHarness(t testing.TB, opts ...any) *harness {
	h := newHarness(t, opts...)
	h.srv.Extend(nil, AccountServices(h.srv))
	return h
}

var iqSeq int

// iq sends an iq (the payload given as XML) and returns the answer.
func (c *client) iq(typ, to, payload string) *Element {
	c.t.Helper()
	iqSeq++
	id := fmt.Sprintf("q%d", iqSeq)
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	c.send(`<iq type='%s' id='%s'%s>%s</iq>`, typ, id, toAttr, payload)
	return c.expect("answer to "+id, isIQResult(id))
}

// ok fails the test unless el is an iq result.
func ok(t *testing.T, el *Element) *Element {
	t.Helper()
	if el.Get("type") != "result" {
		t.Fatalf("expected a result: %s", el.Bytes(nsClient))
	}
	return el
}

// pubsubError returns the stanza condition and the pubsub#errors
// condition of an error.
func pubsubError(el *Element) (string, string) {
	e := el.Child(nsClient, "error")
	if e == nil {
		return "", ""
	}
	cond, app := "", ""
	for _, c := range e.Elements() {
		switch c.Space {
		case nsStanzas:
			if c.Local != "text" {
				cond = c.Local
			}
		case nsPubsubErrors, nsBlockingErrors:
			app = c.Local
		}
	}
	return cond, app
}

func publishXML(node, id, payload, options string) string {
	po := ""
	if options != "" {
		po = `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` + options + `</x></publish-options>`
	}
	idAttr := ""
	if id != "" {
		idAttr = " id='" + id + "'"
	}
	return `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='` + node + `'><item` + idAttr + `>` + payload + `</item></publish>` + po + `</pubsub>`
}

func field(name, value string) string {
	return `<field var='` + name + `'><value>` + value + `</value></field>`
}

func itemsXML(node, extra string) string {
	return `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + node + `'` + extra + `/></pubsub>`
}

// withCaps comes online with XEP-0115 capabilities naming features, and
// answers the server's disco#info query for them when it comes.
func (h *harness) withCaps(user, resource string, features ...string) *client {
	h.t.Helper()
	c := h.login(user, resource)
	c.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	c.expect("roster", isIQResult("r1"))
	q := NewElement(nsDiscoI, "query").Add(NewElement(nsDiscoI, "identity", "category", "client", "type", "pc", "name", "test"))
	for _, f := range append([]string{nsDiscoI, nsCaps}, features...) {
		q.Add(NewElement(nsDiscoI, "feature", "var", f))
	}
	ver, _ := capsHash(q)
	c.send(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:test' ver='%s'/></presence>`, ver)
	capsInfo.Store(c, q)
	c.expect("own presence", func(e *Element) bool {
		if e.Local == "iq" && e.Get("type") == "get" && e.Child(nsDiscoI, "query") != nil {
			c.answerCaps(e)
			return false
		}
		return e.Local == "presence" && e.Get("from") == c.jid && e.Get("type") == ""
	})
	// The server reads this connection in order: after the ping's
	// answer, it has taken the capabilities too.
	c.send(`<iq type='get' id='capsync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.expect("ping", func(e *Element) bool {
		if e.Local == "iq" && e.Get("type") == "get" && e.Child(nsDiscoI, "query") != nil {
			c.answerCaps(e)
			return false
		}
		return isIQResult("capsync")(e)
	})
	return c
}

// capsInfo holds the disco#info each withCaps client answers with.
var capsInfo sync.Map // *client -> *Element

func (c *client) capsVer() string {
	q, _ := capsInfo.Load(c)
	v, _ := capsHash(q.(*Element))
	return v
}

func (c *client) answerCaps(e *Element) {
	q0, _ := capsInfo.Load(c)
	q := q0.(*Element).Copy()
	q.Set("node", e.Child(nsDiscoI, "query").Get("node"))
	r := NewElement(nsClient, "iq", "type", "result", "id", e.Get("id"), "to", e.Get("from")).Add(q)
	c.sendRaw(string(r.Bytes(nsClient)))
}

// event matches a PEP notification of node from owner.
func event(owner, node string) func(*Element) bool {
	return func(e *Element) bool {
		ev := e.Child(nsPubsubEvent, "event")
		return e.Local == "message" && e.Get("from") == owner && ev != nil && ev.Child(nsPubsubEvent, "items") != nil &&
			ev.Child(nsPubsubEvent, "items").Get("node") == node
	}
}

func eventItem(e *Element) *Element {
	return e.Child(nsPubsubEvent, "event").Child(nsPubsubEvent, "items").FirstChild()
}

// XEP-0115 section 5.2's example: the verification string the XEP gives.
func TestCapsHashExample(t *testing.T) {
	q := NewElement(nsDiscoI, "query").Add(
		NewElement(nsDiscoI, "identity", "category", "client", "type", "pc", "name", "Exodus 0.9.1"),
		NewElement(nsDiscoI, "feature", "var", "http://jabber.org/protocol/caps"),
		NewElement(nsDiscoI, "feature", "var", "http://jabber.org/protocol/disco#info"),
		NewElement(nsDiscoI, "feature", "var", "http://jabber.org/protocol/disco#items"),
		NewElement(nsDiscoI, "feature", "var", "http://jabber.org/protocol/muc"))
	if v, ok := capsHash(q); !ok || v != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("ver %q, %v", v, ok)
	}
	q.Add(NewElement(nsDiscoI, "feature", "var", "http://jabber.org/protocol/muc"))
	if _, ok := capsHash(q); ok {
		t.Fatal("a duplicate feature must make the result untrusted")
	}
}

// The server advertises its own capabilities in the stream features, and
// answers disco#info on its caps node with what the hash covers.
func TestServerCapsAdvertised(t *testing.T) {
	h := pepHarness(t)
	c := h.dial()
	c.open()
	c.starttls()
	c.authPlain("alice", "pw-alice")
	f := c.open()
	cp := f.Child(nsCaps, "c")
	if cp == nil || cp.Get("hash") != "sha-1" || cp.Get("node") != capsNode {
		t.Fatalf("no caps in stream features: %s", f.Bytes(""))
	}
	c.bind("desk")
	r := ok(t, c.iq("get", domain, `<query xmlns='http://jabber.org/protocol/disco#info' node='`+capsNode+`#`+cp.Get("ver")+`'/>`))
	q := r.Child(nsDiscoI, "query")
	if v, _ := capsHash(q); v != cp.Get("ver") || q.Get("node") != capsNode+"#"+cp.Get("ver") {
		t.Fatalf("caps node answer hashes to %q, advertised %q: %s", v, cp.Get("ver"), r.Bytes(nsClient))
	}
	feats := map[string]bool{}
	for _, f := range q.Elements() {
		feats[f.Get("var")] = true
	}
	for _, want := range []string{nsBlocking, nsPrivate} {
		if !feats[want] {
			t.Errorf("server disco lacks %s", want)
		}
	}
}

// XEP-0163 section 9.1: the account is a pubsub/pep service and lists the
// XEP-0060 features it implements.
func TestPEPAccountDisco(t *testing.T) {
	h := pepHarness(t)
	a := h.online("alice", "desk")
	q := ok(t, a.iq("get", "alice@"+domain, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)).Child(nsDiscoI, "query")
	pep, feats := false, map[string]bool{}
	for _, c := range q.Elements() {
		pep = pep || (c.Local == "identity" && c.Get("category") == "pubsub" && c.Get("type") == "pep")
		feats[c.Get("var")] = true
	}
	if !pep {
		t.Errorf("no pubsub/pep identity: %s", q.Bytes(""))
	}
	for _, f := range []string{nsPubsub + "#publish-options", nsPubsub + "#auto-create", nsPubsub + "#access-whitelist",
		nsPubsub + "#filtered-notifications", nsVCardConv, nsBookmarks2 + "#compat"} {
		if !feats[f] {
			t.Errorf("account disco lacks %s", f)
		}
	}
}

// OMEMO (XEP-0384) clients publish their device list with publish-options
// access_model=open: the node is created open, anyone can read it, and a
// publish whose options do not match is refused with precondition-not-met.
func TestPEPOMEMOPublishOptions(t *testing.T) {
	h := pepHarness(t, noDomainRoster)
	a := h.online("alice", "desk")
	c := h.online("carol", "pc") // no subscription to alice
	for _, node := range []string{"urn:xmpp:omemo:2:devices", "eu.siacs.conversations.axolotl.devicelist"} {
		payload := `<devices xmlns='urn:xmpp:omemo:2'><device id='12345'/></devices>`
		if strings.HasPrefix(node, "eu.") {
			payload = `<list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/></list>`
		}
		r := ok(t, a.iq("set", "", publishXML(node, "current", payload, field("pubsub#access_model", "open"))))
		if it := r.Child(nsPubsub, "pubsub").Child(nsPubsub, "publish").Child(nsPubsub, "item"); it == nil || it.Get("id") != "current" {
			t.Fatalf("publish result: %s", r.Bytes(nsClient))
		}
		got := ok(t, c.iq("get", "alice@"+domain, itemsXML(node, "")))
		items := got.Child(nsPubsub, "pubsub").Child(nsPubsub, "items")
		if got.Get("from") != "alice@"+domain || len(items.Elements()) != 1 || items.FirstChild().FirstChild() == nil ||
			items.FirstChild().FirstChild().Child(items.FirstChild().FirstChild().Space, "device").Get("id") != "12345" {
			t.Fatalf("carol reads the open device list: %s", got.Bytes(nsClient))
		}
		// Same options again: fine. Different: precondition-not-met.
		ok(t, a.iq("set", "", publishXML(node, "current", payload, field("pubsub#access_model", "open"))))
		bad := a.iq("set", "", publishXML(node, "current", payload, field("pubsub#access_model", "presence")))
		if cond, app := pubsubError(bad); cond != "conflict" || app != "precondition-not-met" || bad.Child(nsClient, "error").Get("type") != "cancel" {
			t.Fatalf("mismatched publish-options: %s", bad.Bytes(nsClient))
		}
	}
	// Unknown option fields are refused.
	bad := a.iq("set", "", publishXML("n", "", "<x xmlns='urn:x'/>", field("pubsub#frobnicate", "1")))
	if cond, _ := pubsubError(bad); cond != "bad-request" {
		t.Fatalf("unknown publish option: %s", bad.Bytes(nsClient))
	}
	// A presence-model node is closed to carol, and not listed for her.
	ok(t, a.iq("set", "", publishXML("urn:xmpp:avatar:metadata", "x", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", "")))
	bad = c.iq("get", "alice@"+domain, itemsXML("urn:xmpp:avatar:metadata", ""))
	if cond, app := pubsubError(bad); cond != "not-authorized" || app != "presence-subscription-required" {
		t.Fatalf("presence node read by a stranger: %s", bad.Bytes(nsClient))
	}
	list := ok(t, c.iq("get", "alice@"+domain, `<query xmlns='http://jabber.org/protocol/disco#items'/>`)).Child(nsDiscoIt, "query")
	for _, it := range list.Elements() {
		if it.Get("node") == "urn:xmpp:avatar:metadata" {
			t.Errorf("carol sees a node she may not read: %s", list.Bytes(""))
		}
	}
	if len(list.Elements()) != 2 {
		t.Errorf("carol should see the two open nodes: %s", list.Bytes(""))
	}
	// Someone else cannot publish to alice.
	bad = c.iq("set", "alice@"+domain, publishXML("x", "", "<x xmlns='urn:x'/>", ""))
	if cond, _ := pubsubError(bad); cond != "forbidden" {
		t.Fatalf("carol publishing to alice: %s", bad.Bytes(nsClient))
	}
}

// Notifications go to the owner's resources and to contacts whose
// capabilities ask for the node (+notify), not to others; a resource
// coming online later gets the last item with its publication time.
func TestPEPNotificationsFilteredByCaps(t *testing.T) {
	h := pepHarness(t)
	a := h.withCaps("alice", "desk", "urn:xmpp:avatar:metadata+notify")
	b := h.withCaps("bob", "phone", "urn:xmpp:avatar:metadata+notify", "http://jabber.org/protocol/nick+notify")
	plain := h.online("carol", "pc") // no caps: no notifications
	meta := `<metadata xmlns='urn:xmpp:avatar:metadata'><info id='abc' bytes='10' type='image/png'/></metadata>`
	ok(t, a.iq("set", "", publishXML("urn:xmpp:avatar:metadata", "abc", meta, "")))
	for _, c := range []*client{a, b} {
		el := c.expect("metadata event", event("alice@"+domain, "urn:xmpp:avatar:metadata"))
		if it := eventItem(el); it.Get("id") != "abc" || it.Child(nsAvatarMeta, "metadata") == nil || el.Get("type") != "headline" {
			t.Fatalf("%s got %s", c.jid, el.Bytes(nsClient))
		}
	}
	plain.none(300*time.Millisecond, "an event without +notify", func(e *Element) bool { return e.Child(nsPubsubEvent, "event") != nil })
	// A node bob did not ask for reaches alice's resource only if it asked.
	ok(t, a.iq("set", "", publishXML("http://jabber.org/protocol/tune", "", "<tune xmlns='http://jabber.org/protocol/tune'/>", "")))
	b.none(300*time.Millisecond, "a tune event", event("alice@"+domain, "http://jabber.org/protocol/tune"))
	// Carol comes online with caps the server already verified (bob's
	// ver is cached: no query) and gets the last item, stamped.
	c2 := h.login("carol", "tablet")
	c2.send(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:test' ver='%s'/></presence>`, b.capsVer())
	el := c2.expect("last item", event("alice@"+domain, "urn:xmpp:avatar:metadata"))
	if d := el.Child(nsDelay, "delay"); d == nil || d.Get("stamp") == "" {
		t.Errorf("last item without delay: %s", el.Bytes(nsClient))
	}
}

// Items with max_items, by id, retraction with notify, and errors.
func TestPEPItemsAndRetract(t *testing.T) {
	h := pepHarness(t)
	a := h.withCaps("alice", "desk", "urn:test:list+notify")
	opts := field("pubsub#max_items", "2")
	for _, id := range []string{"1", "2", "3"} {
		ok(t, a.iq("set", "", publishXML("urn:test:list", id, "<e xmlns='urn:test:list'>"+id+"</e>", opts)))
		a.expect("event "+id, event("alice@"+domain, "urn:test:list"))
	}
	count := func(extra string) []string {
		items := ok(t, a.iq("get", "", itemsXML("urn:test:list", extra))).Child(nsPubsub, "pubsub").Child(nsPubsub, "items")
		var ids []string
		for _, it := range items.Elements() {
			ids = append(ids, it.Get("id"))
		}
		return ids
	}
	if ids := count(""); strings.Join(ids, ",") != "3,2" {
		t.Errorf("max_items 2 keeps %v", ids)
	}
	if ids := count(" max_items='1'"); strings.Join(ids, ",") != "3" {
		t.Errorf("max_items='1' returns %v", ids)
	}
	byID := ok(t, a.iq("get", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:test:list'><item id='2'/></items></pubsub>`))
	if its := byID.Child(nsPubsub, "pubsub").Child(nsPubsub, "items").Elements(); len(its) != 1 || its[0].Get("id") != "2" {
		t.Errorf("item by id: %s", byID.Bytes(nsClient))
	}
	ok(t, a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:test:list' notify='true'><item id='2'/></retract></pubsub>`))
	el := a.expect("retract event", event("alice@"+domain, "urn:test:list"))
	if r := eventItem(el); r.Local != "retract" || r.Get("id") != "2" {
		t.Errorf("retract event: %s", el.Bytes(nsClient))
	}
	bad := a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:test:list'><item id='2'/></retract></pubsub>`)
	if cond, _ := pubsubError(bad); cond != "item-not-found" {
		t.Errorf("retracting a missing item: %s", bad.Bytes(nsClient))
	}
	bad = a.iq("get", "", itemsXML("urn:nothing", ""))
	if cond, _ := pubsubError(bad); cond != "item-not-found" {
		t.Errorf("items of a missing node: %s", bad.Bytes(nsClient))
	}
	bad = a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:test:list'><item id='x'><a xmlns='urn:a'/><b xmlns='urn:b'/></item></publish></pubsub>`)
	if cond, app := pubsubError(bad); cond != "bad-request" || app != "invalid-payload" {
		t.Errorf("two payloads: %s", bad.Bytes(nsClient))
	}
	// A publish without an id gets one from the server.
	r := ok(t, a.iq("set", "", publishXML("urn:test:list", "", "<e xmlns='urn:test:list'/>", "")))
	if id := r.Child(nsPubsub, "pubsub").Child(nsPubsub, "publish").Child(nsPubsub, "item").Get("id"); id == "" {
		t.Errorf("no generated id: %s", r.Bytes(nsClient))
	}
}

// Node creation, configuration forms, default configuration, deletion.
func TestPEPOwnerUseCases(t *testing.T) {
	h := pepHarness(t)
	a := h.withCaps("alice", "desk", "urn:test:cfg+notify")
	b := h.online("bob", "phone")
	form := `<configure><x xmlns='jabber:x:data' type='submit'>` + field("FORM_TYPE", nsNodeConfig) + field("pubsub#access_model", "whitelist") + `</x></configure>`
	ok(t, a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='urn:test:cfg'/>`+form+`</pubsub>`))
	bad := a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='urn:test:cfg'/></pubsub>`)
	if cond, _ := pubsubError(bad); cond != "conflict" {
		t.Errorf("creating twice: %s", bad.Bytes(nsClient))
	}
	cfg := ok(t, a.iq("get", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:test:cfg'/></pubsub>`))
	x := cfg.Child(nsPubsubOwner, "pubsub").Child(nsPubsubOwner, "configure").Child(nsXData, "x")
	_, fields := parseForm(x)
	if fields["pubsub#access_model"] != "whitelist" || fields["pubsub#send_last_published_item"] != "on_sub_and_presence" {
		t.Fatalf("configuration form: %s", cfg.Bytes(nsClient))
	}
	def := ok(t, a.iq("get", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><default/></pubsub>`))
	_, fields = parseForm(def.Child(nsPubsubOwner, "pubsub").Child(nsPubsubOwner, "default").Child(nsXData, "x"))
	if fields["pubsub#access_model"] != "presence" || fields["pubsub#deliver_notifications"] != "1" {
		t.Errorf("default configuration: %s", def.Bytes(nsClient))
	}
	// Whitelist: bob (a domain contact) is refused until made a member.
	ok(t, a.iq("set", "", publishXML("urn:test:cfg", "1", "<e xmlns='urn:test:cfg'/>", "")))
	a.expect("event", event("alice@"+domain, "urn:test:cfg"))
	bad = b.iq("get", "alice@"+domain, itemsXML("urn:test:cfg", ""))
	if cond, app := pubsubError(bad); cond != "not-allowed" || app != "closed-node" {
		t.Errorf("whitelist read by bob: %s", bad.Bytes(nsClient))
	}
	ok(t, a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='urn:test:cfg'><affiliation jid='bob@example.test' affiliation='member'/></affiliations></pubsub>`))
	ok(t, b.iq("get", "alice@"+domain, itemsXML("urn:test:cfg", "")))
	bad = b.iq("get", "alice@"+domain, `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:test:cfg'/></pubsub>`)
	if cond, _ := pubsubError(bad); cond != "forbidden" {
		t.Errorf("bob reading alice's configuration: %s", bad.Bytes(nsClient))
	}
	bad = a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:test:cfg'><x xmlns='jabber:x:data' type='submit'>`+field("pubsub#max_items", "0")+`</x></configure></pubsub>`)
	if cond, _ := pubsubError(bad); cond != "not-acceptable" {
		t.Errorf("max_items 0: %s", bad.Bytes(nsClient))
	}
	ok(t, a.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:test:cfg'/></pubsub>`))
	el := a.expect("delete event", func(e *Element) bool {
		ev := e.Child(nsPubsubEvent, "event")
		return ev != nil && ev.Child(nsPubsubEvent, "delete") != nil
	})
	if el.Child(nsPubsubEvent, "event").Child(nsPubsubEvent, "delete").Get("node") != "urn:test:cfg" {
		t.Errorf("delete event: %s", el.Bytes(nsClient))
	}
	bad = a.iq("get", "", itemsXML("urn:test:cfg", ""))
	if cond, _ := pubsubError(bad); cond != "item-not-found" {
		t.Errorf("deleted node: %s", bad.Bytes(nsClient))
	}
}

// Someone without presence subscribes to an open node explicitly: the last
// item comes at once, and later publications follow.
func TestPEPExplicitSubscription(t *testing.T) {
	h := pepHarness(t, noDomainRoster)
	a := h.online("alice", "desk")
	c := h.online("carol", "pc")
	ok(t, a.iq("set", "", publishXML("urn:test:open", "1", "<e xmlns='urn:test:open'>one</e>", field("pubsub#access_model", "open"))))
	r := ok(t, c.iq("set", "alice@"+domain, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='urn:test:open' jid='`+c.jid+`'/></pubsub>`))
	if sub := r.Child(nsPubsub, "pubsub").Child(nsPubsub, "subscription"); sub == nil || sub.Get("subscription") != "subscribed" {
		t.Fatalf("subscribe: %s", r.Bytes(nsClient))
	}
	c.expect("last item", event("alice@"+domain, "urn:test:open"))
	ok(t, a.iq("set", "", publishXML("urn:test:open", "2", "<e xmlns='urn:test:open'>two</e>", "")))
	if el := c.expect("event", event("alice@"+domain, "urn:test:open")); eventItem(el).Get("id") != "2" {
		t.Errorf("event: %s", el.Bytes(nsClient))
	}
	bad := c.iq("set", "alice@"+domain, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='urn:test:open' jid='bob@example.test'/></pubsub>`)
	if cond, app := pubsubError(bad); cond != "bad-request" || app != "invalid-jid" {
		t.Errorf("subscribing someone else: %s", bad.Bytes(nsClient))
	}
	ok(t, c.iq("set", "alice@"+domain, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><unsubscribe node='urn:test:open' jid='`+c.jid+`'/></pubsub>`))
	ok(t, a.iq("set", "", publishXML("urn:test:open", "3", "<e xmlns='urn:test:open'>three</e>", "")))
	c.none(300*time.Millisecond, "an event after unsubscribing", event("alice@"+domain, "urn:test:open"))
}

// photoOf returns the XEP-0153 hash in a presence, "" when none.
func photoOf(e *Element) string {
	if x := e.Child(nsVCardUpdate, "x"); x != nil {
		return x.ChildText(nsVCardUpdate, "photo")
	}
	return ""
}

func png(n byte) []byte {
	return append([]byte("\x89PNG\r\n\x1a\n"), n, n, n)
}

func sha1hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// XEP-0398: a PEP avatar becomes the vCard PHOTO and the hash in the
// owner's presence; a vCard PHOTO becomes the PEP avatar.
func TestAvatarConversion(t *testing.T) {
	h := pepHarness(t)
	a := h.online("alice", "desk")
	b := h.withCaps("bob", "phone", "urn:xmpp:avatar:metadata+notify")
	img := png(1)
	id := sha1hex(img)
	ok(t, a.iq("set", "", publishXML(nsAvatarData, id, "<data xmlns='urn:xmpp:avatar:data'>"+base64.StdEncoding.EncodeToString(img)+"</data>", "")))
	ok(t, a.iq("set", "", publishXML(nsAvatarMeta, id, "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='"+id+"' bytes='11' type='image/png'/></metadata>", "")))
	// Bob sees the presence again with the hash, and the event.
	b.expectAll("presence with hash and metadata event",
		func(e *Element) bool {
			return e.Local == "presence" && strings.HasPrefix(e.Get("from"), "alice@") &&
				photoOf(e) == id
		},
		event("alice@"+domain, nsAvatarMeta))
	v := ok(t, b.iq("get", "alice@"+domain, `<vCard xmlns='vcard-temp'/>`)).Child(nsVCard, "vCard")
	if bin, typ := vcardPhoto(v); string(bin) != string(img) || typ != "image/png" {
		t.Fatalf("vCard PHOTO after a PEP avatar: %s", v.Bytes(""))
	}
	// A later presence of alice's gets the hash from the server.
	a.send(`<presence><show>away</show></presence>`)
	el := b.expect("away", func(e *Element) bool { return e.Local == "presence" && e.ChildText(nsClient, "show") == "away" })
	if photoOf(el) != id {
		t.Errorf("presence without the avatar hash: %s", el.Bytes(nsClient))
	}
	// The other way: alice sets a vCard with another photo.
	img2 := png(2)
	id2 := sha1hex(img2)
	ok(t, a.iq("set", "", `<vCard xmlns='vcard-temp'><NICKNAME>al</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>`+base64.StdEncoding.EncodeToString(img2)+`</BINVAL></PHOTO></vCard>`))
	el = b.expect("metadata event", event("alice@"+domain, nsAvatarMeta))
	info := eventItem(el).Child(nsAvatarMeta, "metadata").Child(nsAvatarMeta, "info")
	if eventItem(el).Get("id") != id2 || info.Get("id") != id2 || info.Get("bytes") != "11" || info.Get("type") != "image/png" {
		t.Fatalf("metadata from the vCard: %s", el.Bytes(nsClient))
	}
	data := ok(t, b.iq("get", "alice@"+domain, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'><item id='`+id2+`'/></items></pubsub>`))
	d := data.Child(nsPubsub, "pubsub").Child(nsPubsub, "items").FirstChild().Child(nsAvatarData, "data")
	if got, _ := base64.StdEncoding.DecodeString(d.Text()); string(got) != string(img2) {
		t.Fatalf("avatar data from the vCard: %s", data.Bytes(nsClient))
	}
}

// BenchmarkPEPPublish measures a publish round trip with its notification
// to another resource that asked for it (+notify).
func BenchmarkPEPPublish(b *testing.B) {
	h := pepHarness(b)
	a := h.withCaps("alice", "desk", "urn:bench+notify")
	bob := h.withCaps("bob", "phone", "urn:bench+notify")
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		a.send(`<iq type='set' id='b%d'>%s</iq>`, i, publishXML("urn:bench", "current", fmt.Sprintf("<e xmlns='urn:bench'>%d</e>", i), ""))
		a.expect("result", isIQResult(fmt.Sprintf("b%d", i)))
		bob.expect("event", event("alice@"+domain, "urn:bench"))
	}
}

// XEP-0060 5.6, 5.7 and 6.3 on PEP: a subscriber lists its own
// subscriptions and affiliations, the owner its affiliations; the
// subscription's options (pubsub#deliver) are read, changed and honoured,
// also when given with the subscribe request.
func TestPEPSubscriptionsAffiliationsOptions(t *testing.T) {
	h := pepHarness(t, noDomainRoster)
	a := h.online("alice", "desk")
	c := h.online("carol", "pc")
	alice := "alice@" + domain
	ok(t, a.iq("set", "", publishXML("urn:test:open", "1", "<e xmlns='urn:test:open'>one</e>", field("pubsub#access_model", "open"))))
	ok(t, a.iq("set", "", publishXML("urn:test:two", "1", "<e xmlns='urn:test:two'>one</e>", field("pubsub#access_model", "open"))))
	ok(t, c.iq("set", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='urn:test:open' jid='`+c.jid+`'/></pubsub>`))
	c.expect("last item", event(alice, "urn:test:open"))

	subs := ok(t, c.iq("get", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions/></pubsub>`)).Child(nsPubsub, "pubsub").Child(nsPubsub, "subscriptions")
	if subs == nil || len(subs.Elements()) != 1 || subs.Elements()[0].Get("node") != "urn:test:open" || subs.Elements()[0].Get("jid") != c.jid || subs.Elements()[0].Get("subscription") != "subscribed" {
		t.Fatalf("subscriptions: %v", subs)
	}
	subs = ok(t, c.iq("get", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions node='urn:test:two'/></pubsub>`)).Child(nsPubsub, "pubsub").Child(nsPubsub, "subscriptions")
	if subs == nil || len(subs.Elements()) != 0 {
		t.Fatalf("subscriptions to another node: %v", subs)
	}
	affs := ok(t, a.iq("get", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><affiliations/></pubsub>`)).Child(nsPubsub, "pubsub").Child(nsPubsub, "affiliations")
	if affs == nil || len(affs.Elements()) != 2 || affs.Elements()[0].Get("affiliation") != "owner" {
		t.Fatalf("owner's affiliations: %v", affs)
	}
	affs = ok(t, c.iq("get", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><affiliations/></pubsub>`)).Child(nsPubsub, "pubsub").Child(nsPubsub, "affiliations")
	if affs == nil || len(affs.Elements()) != 0 {
		t.Fatalf("a subscriber's affiliations: %v", affs)
	}

	// Options: the form, then deliver off stops notifications.
	opts := ok(t, c.iq("get", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><options node='urn:test:open' jid='`+c.jid+`'/></pubsub>`))
	x := opts.Child(nsPubsub, "pubsub").Child(nsPubsub, "options").Child(nsXData, "x")
	if ft, f := parseForm(x); ft != "http://jabber.org/protocol/pubsub#subscribe_options" || f["pubsub#deliver"] != "1" {
		t.Fatalf("options form: %s", opts.Bytes(nsClient))
	}
	bad := c.iq("set", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><options node='urn:test:open' jid='`+c.jid+`'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field><field var='pubsub#digest'><value>1</value></field></x></options></pubsub>`)
	if cond, app := pubsubError(bad); cond != "bad-request" || app != "invalid-options" {
		t.Errorf("unsupported option: %s", bad.Bytes(nsClient))
	}
	bad = c.iq("get", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><options node='urn:test:two' jid='`+c.jid+`'/></pubsub>`)
	if cond, app := pubsubError(bad); cond != "unexpected-request" || app != "not-subscribed" {
		t.Errorf("options without a subscription: %s", bad.Bytes(nsClient))
	}
	ok(t, c.iq("set", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><options node='urn:test:open' jid='`+c.jid+`'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field><field var='pubsub#deliver'><value>0</value></field></x></options></pubsub>`))
	ok(t, a.iq("set", "", publishXML("urn:test:open", "2", "<e xmlns='urn:test:open'>two</e>", "")))
	c.none(300*time.Millisecond, "an event with deliver off", event(alice, "urn:test:open"))
	subs = ok(t, c.iq("get", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions/></pubsub>`)).Child(nsPubsub, "pubsub").Child(nsPubsub, "subscriptions")
	if len(subs.Elements()) != 1 || subs.Elements()[0].Get("subscription") != "subscribed" {
		t.Fatalf("state with options: %s", subs.Bytes(""))
	}
	// Subscribe and configure in one request (6.3.7).
	ok(t, c.iq("set", alice, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='urn:test:two' jid='`+c.jid+`'/><options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field><field var='pubsub#deliver'><value>false</value></field></x></options></pubsub>`))
	c.quiet(200 * time.Millisecond)
	ok(t, a.iq("set", "", publishXML("urn:test:two", "2", "<e xmlns='urn:test:two'>two</e>", "")))
	c.none(300*time.Millisecond, "an event with deliver off from the start", event(alice, "urn:test:two"))

	info := ok(t, c.iq("get", alice, `<query xmlns='http://jabber.org/protocol/disco#info'/>`))
	for _, f := range []string{"retrieve-subscriptions", "retrieve-affiliations", "subscription-options"} {
		if !strings.Contains(string(info.Bytes(nsClient)), `var="http://jabber.org/protocol/pubsub#`+f+`"`) {
			t.Errorf("account disco lacks %s", f)
		}
	}
}
