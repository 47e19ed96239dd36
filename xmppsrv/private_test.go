package xmppsrv

import (
	"strings"
	"testing"
)

// XEP-0049: store, retrieve, the empty answer for nothing stored, and the
// errors the XEP names.
func TestPrivateStorage(t *testing.T) {
	h := pepHarness(t)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	ok(t, a.iq("set", "", `<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query>`))
	r := ok(t, a.iq("get", "", `<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>`))
	if nick := r.Child(nsPrivate, "query").Child("exodus:prefs", "exodus").ChildText("exodus:prefs", "defaultnick"); nick != "Hamlet" {
		t.Fatalf("stored data: %s", r.Bytes(nsClient))
	}
	r = ok(t, a.iq("get", "", `<query xmlns='jabber:iq:private'><other xmlns='urn:other'/></query>`))
	if e := r.Child(nsPrivate, "query").Child("urn:other", "other"); e == nil || len(e.Children) != 0 {
		t.Fatalf("nothing stored: %s", r.Bytes(nsClient))
	}
	for _, tc := range []struct{ typ, to, payload, cond string }{
		{"get", "", `<query xmlns='jabber:iq:private'/>`, "not-acceptable"},
		{"set", "", `<query xmlns='jabber:iq:private'><vCard xmlns='vcard-temp'/></query>`, "not-acceptable"},
		{"get", "alice@example.test", `<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>`, "forbidden"},
	} {
		c := a
		if tc.to != "" {
			c = b
		}
		if cond := stanzaErrorCond(c.iq(tc.typ, tc.to, tc.payload)); cond != tc.cond {
			t.Errorf("%s %s: %s, want %s", tc.typ, tc.payload, cond, tc.cond)
		}
	}
}

// XEP-0402 section 5.3: bookmarks stored through XEP-0049 (XEP-0048's
// storage:bookmarks) show up as XEP-0402 items, with notifications, and
// XEP-0402 items show up in the private storage.
func TestBookmarksConversion(t *testing.T) {
	h := pepHarness(t)
	a := h.online("alice", "desk")
	other := h.withCaps("alice", "phone", nsBookmarks2+"+notify")
	ok(t, a.iq("set", "", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
		`<conference jid='council@conference.example.test' name='Council' autojoin='1'><nick>Puck</nick></conference>`+
		`<url name='Site' url='https://example.test/'/></storage></query>`))
	el := other.expect("bookmark event", event("alice@"+domain, nsBookmarks2))
	it := eventItem(el)
	conf := it.Child(nsBookmarks2, "conference")
	if it.Get("id") != "council@conference.example.test" || conf.Get("name") != "Council" || conf.Get("autojoin") != "true" || conf.ChildText(nsBookmarks2, "nick") != "Puck" {
		t.Fatalf("converted bookmark: %s", el.Bytes(nsClient))
	}
	// The node is private (XEP-0223): whitelist, never pushed at login.
	cfg := ok(t, a.iq("get", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:bookmarks:1'/></pubsub>`))
	_, fields := parseForm(cfg.Child(nsPubsubOwner, "pubsub").Child(nsPubsubOwner, "configure").Child(nsXData, "x"))
	if fields["pubsub#access_model"] != "whitelist" || fields["pubsub#send_last_published_item"] != "never" || fields["pubsub#max_items"] != "max" {
		t.Errorf("bookmarks node configuration: %v", fields)
	}
	// A XEP-0402 client adds one with the options the XEP gives.
	opts := field("pubsub#persist_items", "true") + field("pubsub#max_items", "max") +
		field("pubsub#send_last_published_item", "never") + field("pubsub#access_model", "whitelist")
	ok(t, other.iq("set", "", publishXML(nsBookmarks2, "orchard@conference.example.test",
		"<conference xmlns='urn:xmpp:bookmarks:1' name='The Orchard'><nick>JC</nick></conference>", opts)))
	r := ok(t, a.iq("get", "", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>`))
	st := r.Child(nsPrivate, "query").Child(nsBookmarks, "storage")
	got := map[string]*Element{}
	for _, c := range st.Elements() {
		if c.Local == "conference" {
			got[c.Get("jid")] = c
		}
	}
	if len(got) != 2 || got["orchard@conference.example.test"].Get("name") != "The Orchard" ||
		got["council@conference.example.test"].ChildText(nsBookmarks, "nick") != "Puck" || st.Child(nsBookmarks, "url") == nil {
		t.Fatalf("private bookmarks after a XEP-0402 publish: %s", st.Bytes(""))
	}
	// The legacy client drops the council: it is retracted, with notify.
	ok(t, a.iq("set", "", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
		`<conference jid='orchard@conference.example.test' name='The Orchard'><nick>JC</nick></conference></storage></query>`))
	el = other.expect("retraction", func(e *Element) bool {
		return event("alice@"+domain, nsBookmarks2)(e) && eventItem(e).Local == "retract"
	})
	if eventItem(el).Get("id") != "council@conference.example.test" {
		t.Errorf("retraction: %s", el.Bytes(nsClient))
	}
	items := ok(t, a.iq("get", "", itemsXML(nsBookmarks2, ""))).Child(nsPubsub, "pubsub").Child(nsPubsub, "items")
	if len(items.Elements()) != 1 || items.FirstChild().Get("id") != "orchard@conference.example.test" {
		t.Errorf("XEP-0402 items: %s", items.Bytes(""))
	}
	// Nobody else reads them.
	b := h.online("bob", "desk")
	if cond := stanzaErrorCond(b.iq("get", "alice@"+domain, itemsXML(nsBookmarks2, ""))); cond != "not-allowed" {
		t.Errorf("bob reading alice's bookmarks: %s", cond)
	}
}

// XEP-0402 "#compat-pep": a client of XEP-0048 over PEP (the
// storage:bookmarks node) and a XEP-0402 client see the same bookmarks,
// both ways, with notifications on the legacy node.
func TestBookmarksCompatPEP(t *testing.T) {
	h := pepHarness(t)
	modern := h.online("alice", "desk")
	legacy := h.withCaps("alice", "phone", nsBookmarks+"+notify")
	legacyItems := func() map[string]*Element {
		t.Helper()
		r := ok(t, legacy.iq("get", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='storage:bookmarks'/></pubsub>`))
		items := r.Child(nsPubsub, "pubsub").Child(nsPubsub, "items").Elements()
		if len(items) != 1 || items[0].Get("id") != "current" {
			t.Fatalf("legacy items: %s", r.Bytes(nsClient))
		}
		got := map[string]*Element{}
		for _, c := range items[0].Child(nsBookmarks, "storage").Elements() {
			if c.Local == "conference" {
				got[c.Get("jid")] = c
			}
		}
		return got
	}
	info := ok(t, modern.iq("get", "alice@example.test", `<query xmlns='http://jabber.org/protocol/disco#info'/>`))
	if !strings.Contains(string(info.Bytes(nsClient)), `var="urn:xmpp:bookmarks:1#compat-pep"`) {
		t.Fatalf("account disco lacks #compat-pep: %s", info.Bytes(nsClient))
	}
	// A XEP-0402 client adds a bookmark before the legacy node exists: the
	// legacy client reads it all the same.
	opts := field("pubsub#persist_items", "true") + field("pubsub#max_items", "max") +
		field("pubsub#send_last_published_item", "never") + field("pubsub#access_model", "whitelist")
	ok(t, modern.iq("set", "", publishXML(nsBookmarks2, "orchard@conference.example.test",
		"<conference xmlns='urn:xmpp:bookmarks:1' name='The Orchard' autojoin='true'><nick>JC</nick></conference>", opts)))
	legacy.expect("legacy event for the XEP-0402 publish", event("alice@"+domain, nsBookmarks))
	if got := legacyItems(); len(got) != 1 || got["orchard@conference.example.test"].Get("name") != "The Orchard" ||
		got["orchard@conference.example.test"].Get("autojoin") != "true" {
		t.Fatalf("legacy view of a XEP-0402 bookmark: %v", got)
	}
	// The legacy client publishes its list with one more room.
	legacyOpts := field("pubsub#persist_items", "true") + field("pubsub#access_model", "whitelist")
	ok(t, legacy.iq("set", "", publishXML(nsBookmarks, "current", `<storage xmlns='storage:bookmarks'>`+
		`<conference jid='orchard@conference.example.test' name='The Orchard' autojoin='true'><nick>JC</nick></conference>`+
		`<conference jid='council@conference.example.test' name='Council'><nick>Puck</nick></conference></storage>`, legacyOpts)))
	r := ok(t, modern.iq("get", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub>`))
	ids := map[string]bool{}
	for _, it := range r.Child(nsPubsub, "pubsub").Child(nsPubsub, "items").Elements() {
		ids[it.Get("id")] = true
	}
	if len(ids) != 2 || !ids["council@conference.example.test"] {
		t.Fatalf("XEP-0402 node after a legacy publish: %s", r.Bytes(nsClient))
	}
	// The XEP-0402 client retracts the orchard: the legacy client is told.
	ok(t, modern.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:xmpp:bookmarks:1' notify='true'><item id='orchard@conference.example.test'/></retract></pubsub>`))
	el := legacy.expect("legacy bookmarks event", func(e *Element) bool {
		if !event("alice@"+domain, nsBookmarks)(e) {
			return false
		}
		st := eventItem(e).Child(nsBookmarks, "storage")
		return st != nil && len(st.Elements()) == 1
	})
	if c := eventItem(el).Child(nsBookmarks, "storage").Child(nsBookmarks, "conference"); c.Get("jid") != "council@conference.example.test" {
		t.Fatalf("legacy event: %s", el.Bytes(nsClient))
	}
	if got := legacyItems(); len(got) != 1 {
		t.Fatalf("legacy items after the retraction: %v", got)
	}
	// The legacy node stays private.
	bob := h.online("bob", "desk")
	bad := bob.iq("get", "alice@example.test", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='storage:bookmarks'/></pubsub>`)
	if bad.Get("type") != "error" {
		t.Fatalf("bob read alice's legacy bookmarks: %s", bad.Bytes(nsClient))
	}
}
