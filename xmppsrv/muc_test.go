package xmppsrv

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/muc"
	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
	"github.com/parleyhq/parley/storage/memstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

const (
	mucDomain = MUCSubdomain + "." + domain
	room1     = "room1@" + mucDomain
)

// newMUCHarness is newHarness with the MUC service (and message history)
// on.
func newMUCHarness(t testing.TB, cfg muc.Config, opts ...any) (*harness, *MUC) {
	t.Helper()
	h := newHarness(t, append([]any{archiveOn{}}, opts...)...)
	m := NewMUC(h.srv, cfg)
	h.srv.Extend([]Component{m}, nil)
	return h, m
}

// mucCodes returns the muc#user status codes of a stanza.
func mucCodes(el *Element) []string {
	var out []string
	if x := el.Child(nsMUCUser, "x"); x != nil {
		for _, c := range x.Elements() {
			if c.Local == "status" {
				out = append(out, c.Get("code"))
			}
		}
	}
	return out
}

func hasCodes(el *Element, codes ...string) bool {
	got := mucCodes(el)
	for _, c := range codes {
		if !slices.Contains(got, c) {
			return false
		}
	}
	return true
}

// mucItem returns the muc#user item of a presence.
func mucItem(el *Element) *Element {
	if x := el.Child(nsMUCUser, "x"); x != nil {
		return x.Child(nsMUCUser, "item")
	}
	return nil
}

// occupantPresence matches presence from occupant JID from (of type typ).
func occupantPresence(from, typ string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Local == "presence" && e.Get("from") == from && e.Get("type") == typ
	}
}

func selfPresence(from string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Local == "presence" && e.Get("from") == from && e.Get("type") == "" && hasCodes(e, "110")
	}
}

func isSubject(room string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Local == "message" && strings.HasPrefix(e.Get("from"), room) &&
			e.Child(nsClient, "subject") != nil && e.Child(nsClient, "body") == nil
	}
}

func isGroupchat(body string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Local == "message" && e.Get("type") == "groupchat" && e.ChildText(nsClient, "body") == body
	}
}

// mucJoin enters room as nick and returns the self-presence, after the
// subject that completes the join.
func mucJoin(c *client, room, nick, x string) *Element {
	c.t.Helper()
	c.send(`<presence to='%s/%s' id='join-%s'><x xmlns='%s'>%s</x></presence>`, room, nick, nick, nsMUC, x)
	self := c.expect("self-presence in "+room, func(e *Element) bool {
		if e.Local == "presence" && e.Get("type") == "error" {
			c.t.Fatalf("%s: joining %s as %s: %s", c.jid, room, nick, e.Bytes(nsClient))
		}
		return selfPresence(room + "/" + nick)(e)
	})
	c.expect("subject of "+room, isSubject(room))
	return self
}

// mucCreate creates an instant room with alice's client as owner.
func mucCreate(c *client, room, nick string) {
	c.t.Helper()
	self := mucJoin(c, room, nick, "")
	if !hasCodes(self, "110", "201") {
		c.t.Fatalf("creating %s: self-presence lacks 110 and 201: %s", room, self.Bytes(nsClient))
	}
	c.send(`<iq type='set' id='instant' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'/></query></iq>`, room, nsMUCOwner)
	if el := c.expect("instant room", isIQResult("instant")); el.Get("type") != "result" {
		c.t.Fatalf("instant room: %s", el.Bytes(nsClient))
	}
}

// mucConfigure submits configuration fields (var -> values) as owner.
func mucConfigure(c *client, room string, fields map[string][]string) *Element {
	c.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `<iq type='set' id='cfg' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>`, room, nsMUCOwner)
	fmt.Fprintf(&b, `<field var='FORM_TYPE'><value>%s</value></field>`, nsRoomConfig)
	for k, vals := range fields {
		fmt.Fprintf(&b, `<field var='%s'>`, k)
		for _, v := range vals {
			fmt.Fprintf(&b, `<value>%s</value>`, xmlEscape(v))
		}
		b.WriteString(`</field>`)
	}
	b.WriteString(`</x></query></iq>`)
	c.sendRaw(b.String())
	return c.expect("configuration result", isIQResult("cfg"))
}

func mucAdmin(c *client, room, id, items string) *Element {
	c.t.Helper()
	c.send(`<iq type='set' id='%s' to='%s'><query xmlns='%s'>%s</query></iq>`, id, room, nsMUCAdmin, items)
	return c.expect("admin result "+id, isIQResult(id))
}

func presenceError(room string) func(*Element) bool {
	return func(e *Element) bool {
		return e.Local == "presence" && e.Get("type") == "error" && strings.HasPrefix(e.Get("from"), room)
	}
}

// errorBy returns the 'by' of a stanza error.
func errorBy(e *Element) string {
	if er := e.Child(nsClient, "error"); er != nil {
		return er.Get("by")
	}
	return ""
}

func TestMUCServiceDisco(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	a.send(`<iq type='get' id='i1' to='%s'><query xmlns='%s'/></iq>`, mucDomain, nsDiscoI)
	el := a.expect("service info", isIQResult("i1"))
	q := el.Child(nsDiscoI, "query")
	id := q.Child(nsDiscoI, "identity")
	if id == nil || id.Get("category") != "conference" || id.Get("type") != "text" {
		t.Fatalf("service identity: %s", el.Bytes(nsClient))
	}
	if !hasFeature(q, nsMUC) || !hasFeature(q, nsStableID) {
		t.Errorf("service features: %s", el.Bytes(nsClient))
	}
	// The server lists the service.
	a.send(`<iq type='get' id='i2' to='%s'><query xmlns='%s'/></iq>`, domain, nsDiscoIt)
	el = a.expect("server items", isIQResult("i2"))
	if !strings.Contains(string(el.Bytes(nsClient)), mucDomain) {
		t.Errorf("server does not list %s: %s", mucDomain, el.Bytes(nsClient))
	}
}

func hasFeature(q *Element, f string) bool {
	for _, c := range q.Elements() {
		if c.Local == "feature" && c.Get("var") == f {
			return true
		}
	}
	return false
}

func TestMUCCreateInstantRoom(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	self := mucJoin(a, room1, "Alice", "")
	if !hasCodes(self, "110", "201", "170") || self.Get("id") != "join-Alice" {
		t.Fatalf("creator's self-presence: %s", self.Bytes(nsClient))
	}
	if it := mucItem(self); it == nil || it.Get("affiliation") != "owner" || it.Get("role") != "moderator" {
		t.Fatalf("creator is not owner and moderator: %s", self.Bytes(nsClient))
	}
	// Locked until configured: nobody else gets in, nor sees it.
	b.send(`<presence to='%s/Bob'><x xmlns='%s'/></presence>`, room1, nsMUC)
	el := b.expect("locked room", presenceError(room1))
	if stanzaErrorCond(el) != "item-not-found" || errorBy(el) != room1 || el.Child(nsMUC, "x") == nil {
		t.Fatalf("entering a locked room: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='set' id='instant' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'/></query></iq>`, room1, nsMUCOwner)
	if el := a.expect("instant", isIQResult("instant")); el.Get("type") != "result" {
		t.Fatalf("instant room: %s", el.Bytes(nsClient))
	}
	// Now bob gets the occupants, his own presence, then the subject.
	b.send(`<presence to='%s/Bob'><x xmlns='%s'/></presence>`, room1, nsMUC)
	first := b.expect("alice's presence", func(e *Element) bool { return e.Local == "presence" })
	if first.Get("from") != room1+"/Alice" || hasCodes(first, "110") {
		t.Fatalf("first presence to bob should be alice's: %s", first.Bytes(nsClient))
	}
	if it := mucItem(first); it.Get("jid") != "" {
		t.Errorf("semi-anonymous room shows alice's JID to a participant: %s", first.Bytes(nsClient))
	}
	self = b.expect("bob's self-presence", func(e *Element) bool { return e.Local == "presence" })
	if self.Get("from") != room1+"/Bob" || !hasCodes(self, "110") || hasCodes(self, "201") || hasCodes(self, "100") {
		t.Fatalf("bob's self-presence: %s", self.Bytes(nsClient))
	}
	subj := b.expect("subject", func(e *Element) bool { return e.Local == "message" })
	if !isSubject(room1)(subj) || subj.ChildText(nsClient, "subject") != "" {
		t.Fatalf("after self-presence comes the (empty) subject: %s", subj.Bytes(nsClient))
	}
	// Alice, a moderator, sees bob's real JID.
	el = a.expect("bob's presence", occupantPresence(room1+"/Bob", ""))
	if it := mucItem(el); it.Get("jid") != b.jid || it.Get("role") != "participant" || it.Get("affiliation") != "none" {
		t.Errorf("bob's presence to the moderator: %s", el.Bytes(nsClient))
	}
	// The room in discovery.
	b.send(`<iq type='get' id='d1' to='%s'><query xmlns='%s'/></iq>`, room1, nsDiscoI)
	el = b.expect("room info", isIQResult("d1"))
	q := el.Child(nsDiscoI, "query")
	for _, f := range []string{nsMUC, nsStableID, nsSelfPing, "muc_public", "muc_temporary", "muc_open", "muc_unmoderated", "muc_semianonymous", "muc_unsecured", nsMAM} {
		if !hasFeature(q, f) {
			t.Errorf("room lacks feature %s: %s", f, el.Bytes(nsClient))
		}
	}
	if x := q.Child(nsXData, "x"); x == nil || formValues(x)["FORM_TYPE"][0] != nsRoomInfo || formValues(x)["muc#roominfo_occupants"][0] != "2" {
		t.Errorf("room info form: %s", el.Bytes(nsClient))
	}
	b.send(`<iq type='get' id='d2' to='%s'><query xmlns='%s'/></iq>`, mucDomain, nsDiscoIt)
	el = b.expect("rooms", isIQResult("d2"))
	if items := el.Child(nsDiscoIt, "query").Elements(); len(items) != 1 || items[0].Get("jid") != room1 {
		t.Errorf("public rooms: %s", el.Bytes(nsClient))
	}
	// A temporary room goes when its last occupant leaves.
	a.send(`<presence to='%s/Alice' type='unavailable'/>`, room1)
	a.expect("alice leaves", func(e *Element) bool {
		return occupantPresence(room1+"/Alice", "unavailable")(e) && hasCodes(e, "110")
	})
	b.send(`<presence to='%s/Bob' type='unavailable'/>`, room1)
	b.expect("bob leaves", occupantPresence(room1+"/Bob", "unavailable"))
	b.send(`<iq type='get' id='d3' to='%s'><query xmlns='%s'/></iq>`, room1, nsDiscoI)
	if el := b.expect("gone room", isIQResult("d3")); stanzaErrorCond(el) != "item-not-found" {
		t.Errorf("temporary room survived its last occupant: %s", el.Bytes(nsClient))
	}
}

func TestMUCReservedRoomConfiguration(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucJoin(a, room1, "Alice", "")
	a.send(`<iq type='get' id='form' to='%s'><query xmlns='%s'/></iq>`, room1, nsMUCOwner)
	el := a.expect("configuration form", isIQResult("form"))
	x := el.Child(nsMUCOwner, "query").Child(nsXData, "x")
	if x == nil || x.Get("type") != "form" {
		t.Fatalf("no configuration form: %s", el.Bytes(nsClient))
	}
	vals := formValues(x)
	for _, f := range []string{"muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_persistentroom",
		"muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom", "muc#roomconfig_passwordprotectedroom",
		"muc#roomconfig_roomsecret", "muc#roomconfig_whois", "muc#roomconfig_publicroom", "muc#roomconfig_roomowners",
		"muc#roomconfig_roomadmins", "muc#roomconfig_enablearchiving", "muc#maxhistoryfetch"} {
		if _, ok := vals[f]; !ok {
			t.Errorf("form lacks %s", f)
		}
	}
	if vals["FORM_TYPE"][0] != nsRoomConfig || vals["muc#roomconfig_whois"][0] != "moderators" || vals["muc#roomconfig_roomowners"][0] != "alice@"+domain {
		t.Errorf("form defaults: %v", vals)
	}
	// A password-protected room needs a password.
	el = mucConfigure(a, room1, map[string][]string{"muc#roomconfig_passwordprotectedroom": {"1"}})
	if stanzaErrorCond(el) != "not-acceptable" {
		t.Fatalf("protected room without a password: %s", el.Bytes(nsClient))
	}
	el = mucConfigure(a, room1, map[string][]string{
		"muc#roomconfig_roomname":              {"Planning ☕"},
		"muc#roomconfig_roomdesc":              {"Where plans are made"},
		"muc#roomconfig_persistentroom":        {"1"},
		"muc#roomconfig_membersonly":           {"1"},
		"muc#roomconfig_passwordprotectedroom": {"1"},
		"muc#roomconfig_roomsecret":            {"s3cret"},
		"muc#roomconfig_whois":                 {"anyone"},
		"muc#roomconfig_moderatedroom":         {"1"},
		"muc#roomconfig_roomadmins":            {"carol@" + domain},
	})
	if el.Get("type") != "result" {
		t.Fatalf("configuration: %s", el.Bytes(nsClient))
	}
	b.send(`<iq type='get' id='d1' to='%s'><query xmlns='%s'/></iq>`, room1, nsDiscoI)
	el = b.expect("room info", isIQResult("d1"))
	q := el.Child(nsDiscoI, "query")
	for _, f := range []string{"muc_persistent", "muc_membersonly", "muc_passwordprotected", "muc_nonanonymous", "muc_moderated"} {
		if !hasFeature(q, f) {
			t.Errorf("configured room lacks %s: %s", f, el.Bytes(nsClient))
		}
	}
	if q.Child(nsDiscoI, "identity").Get("name") != "Planning ☕" {
		t.Errorf("room name: %s", el.Bytes(nsClient))
	}
	// Only owners configure.
	b.send(`<iq type='get' id='f2' to='%s'><query xmlns='%s'/></iq>`, room1, nsMUCOwner)
	if el := b.expect("forbidden", isIQResult("f2")); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("non-owner got the form: %s", el.Bytes(nsClient))
	}
	// Carol became an admin by the form.
	a.send(`<iq type='get' id='l1' to='%s'><query xmlns='%s'><item affiliation='admin'/></query></iq>`, room1, nsMUCAdmin)
	el = a.expect("admin list", isIQResult("l1"))
	if items := el.Child(nsMUCAdmin, "query").Elements(); len(items) != 1 || items[0].Get("jid") != "carol@"+domain {
		t.Errorf("admin list: %s", el.Bytes(nsClient))
	}
	// A later change is announced: 172 (now non-anonymous was already
	// set, so) 104 for a new name, 173 back to semi-anonymous.
	el = mucConfigure(a, room1, map[string][]string{"muc#roomconfig_roomname": {"Plans"}, "muc#roomconfig_whois": {"moderators"}})
	if el.Get("type") != "result" {
		t.Fatalf("second configuration: %s", el.Bytes(nsClient))
	}
	el = a.expect("configuration notice", func(e *Element) bool { return e.Local == "message" && e.Get("from") == room1 })
	if !hasCodes(el, "104", "173") || el.Get("type") != "groupchat" {
		t.Errorf("configuration change notice: %s", el.Bytes(nsClient))
	}
	// Cancelling the first configuration of a new room destroys it.
	a.send(`<presence to='room2@%s/Alice'><x xmlns='%s'/></presence>`, mucDomain, nsMUC)
	a.expect("room2 created", func(e *Element) bool { return selfPresence("room2@"+mucDomain+"/Alice")(e) && hasCodes(e, "201") })
	a.send(`<iq type='set' id='cancel' to='room2@%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='cancel'/></query></iq>`, mucDomain, nsMUCOwner)
	el = a.expect("destroyed", occupantPresence("room2@"+mucDomain+"/Alice", "unavailable"))
	if x := el.Child(nsMUCUser, "x"); x == nil || x.Child(nsMUCUser, "destroy") == nil {
		t.Errorf("cancel should destroy the new room: %s", el.Bytes(nsClient))
	}
	a.expect("cancel result", isIQResult("cancel"))
}

// sayN sends n groupchat messages and waits for their reflections.
func sayN(c *client, room string, n int, prefix string) {
	c.t.Helper()
	for i := 0; i < n; i++ {
		c.send(`<message type='groupchat' to='%s' id='%s%d'><body>%s %d</body></message>`, room, prefix, i, prefix, i)
		c.expect("reflection", isGroupchat(fmt.Sprintf("%s %d", prefix, i)))
	}
}

func TestMUCJoinWithHistory(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	c := h.online("carol", "desk")
	mucCreate(a, room1, "Alice")
	a.send(`<message type='groupchat' to='%s' id='s1'><subject>Plans for Q3</subject></message>`, room1)
	a.expect("subject change", isSubject(room1))
	sayN(a, room1, 5, "hello")

	// Bob asks for two stanzas: the last two, delayed, then the subject.
	b.send(`<presence to='%s/Bob'><x xmlns='%s'><history maxstanzas='2'/></x></presence>`, room1, nsMUC)
	var got []*Element
	for {
		el := b.next()
		if isSubject(room1)(el) {
			if el.ChildText(nsClient, "subject") != "Plans for Q3" || el.Get("from") != room1+"/Alice" {
				t.Errorf("subject: %s", el.Bytes(nsClient))
			}
			if d := el.Child(nsDelay, "delay"); d == nil || d.Get("from") != room1 {
				t.Errorf("subject on entering should carry a delay from the room: %s", el.Bytes(nsClient))
			}
			break
		}
		if el.Local == "message" {
			got = append(got, el)
		}
	}
	if len(got) != 2 || got[0].ChildText(nsClient, "body") != "hello 3" || got[1].ChildText(nsClient, "body") != "hello 4" {
		t.Fatalf("history with maxstanzas=2: %d messages", len(got))
	}
	for _, el := range got {
		d := el.Child(nsDelay, "delay")
		sid := el.Child(nsSID, "stanza-id")
		if d == nil || d.Get("from") != room1 || d.Get("stamp") == "" || el.Get("from") != room1+"/Alice" ||
			sid == nil || sid.Get("by") != room1 || el.Get("to") != b.jid {
			t.Errorf("history message: %s", el.Bytes(nsClient))
		}
	}
	// Carol wants none.
	c.send(`<presence to='%s/Carol'><x xmlns='%s'><history maxchars='0'/></x></presence>`, room1, nsMUC)
	c.expect("self", selfPresence(room1+"/Carol"))
	if el := c.expect("subject", func(e *Element) bool { return e.Local == "message" }); !isSubject(room1)(el) {
		t.Fatalf("maxchars=0 still sent history: %s", el.Bytes(nsClient))
	}
	// Since the future: nothing; seconds=3600: all five (within the
	// room's default of 20).
	c.send(`<presence to='%s/Carol' type='unavailable'/>`, room1)
	c.expect("left", occupantPresence(room1+"/Carol", "unavailable"))
	since := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	c.send(`<presence to='%s/Carol'><x xmlns='%s'><history since='%s'/></x></presence>`, room1, nsMUC, since)
	c.expect("self", selfPresence(room1+"/Carol"))
	if el := c.expect("subject", func(e *Element) bool { return e.Local == "message" }); !isSubject(room1)(el) {
		t.Fatalf("since the future still sent history: %s", el.Bytes(nsClient))
	}
	c.send(`<presence to='%s/Carol' type='unavailable'/>`, room1)
	c.expect("left", occupantPresence(room1+"/Carol", "unavailable"))
	c.send(`<presence to='%s/Carol'><x xmlns='%s'><history seconds='3600' maxchars='100000'/></x></presence>`, room1, nsMUC)
	c.expect("self", selfPresence(room1+"/Carol"))
	n := 0
	for {
		el := c.next()
		if isSubject(room1)(el) {
			break
		}
		if el.Local == "message" && el.Child(nsDelay, "delay") != nil {
			n++
		}
	}
	if n != 5 {
		t.Errorf("seconds=3600 gave %d messages, want 5", n)
	}
	// Live messages keep the sender's id and carry the room's stanza-id.
	b.send(`<message type='groupchat' to='%s' id='live1'><body>live</body></message>`, room1)
	el := a.expect("live", isGroupchat("live"))
	if el.Get("id") != "live1" || el.Get("from") != room1+"/Bob" || el.Child(nsSID, "stanza-id").Get("by") != room1 {
		t.Errorf("live message: %s", el.Bytes(nsClient))
	}
	if el.Child(nsDelay, "delay") != nil {
		t.Errorf("live message with a delay: %s", el.Bytes(nsClient))
	}
}

func TestMUCModeration(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	c := h.online("carol", "desk")
	mucJoin(a, room1, "Alice", "")
	if el := mucConfigure(a, room1, map[string][]string{"muc#roomconfig_moderatedroom": {"1"}}); el.Get("type") != "result" {
		t.Fatalf("moderated: %s", el.Bytes(nsClient))
	}
	self := mucJoin(b, room1, "Bob", "")
	if mucItem(self).Get("role") != "visitor" {
		t.Fatalf("an unaffiliated newcomer to a moderated room is a visitor: %s", self.Bytes(nsClient))
	}
	mucJoin(c, room1, "Carol", "")
	// Visitors may not speak.
	b.send(`<message type='groupchat' to='%s' id='v1'><body>may I?</body></message>`, room1)
	el := b.expect("forbidden", isStanza("message", "error"))
	if stanzaErrorCond(el) != "forbidden" || errorBy(el) != room1 {
		t.Fatalf("visitor speaking: %s", el.Bytes(nsClient))
	}
	// A visitor cannot kick.
	if el := mucAdmin(b, room1, "k0", `<item nick='Carol' role='none'/>`); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("visitor kicking: %s", el.Bytes(nsClient))
	}
	// Voice: the owner grants it, everyone sees the new role.
	if el := mucAdmin(a, room1, "v", `<item nick='Bob' role='participant'><reason>speak up</reason></item>`); el.Get("type") != "result" {
		t.Fatalf("grant voice: %s", el.Bytes(nsClient))
	}
	el = c.expect("bob's voice", occupantPresence(room1+"/Bob", ""))
	if it := mucItem(el); it.Get("role") != "participant" || it.ChildText(nsMUCUser, "reason") != "speak up" {
		t.Errorf("voice presence: %s", el.Bytes(nsClient))
	}
	b.expect("own voice", selfPresence(room1+"/Bob"))
	b.send(`<message type='groupchat' to='%s'><body>thanks</body></message>`, room1)
	c.expect("bob speaks", isGroupchat("thanks"))
	// Revoke it again.
	if el := mucAdmin(a, room1, "v2", `<item nick='Bob' role='visitor'/>`); el.Get("type") != "result" {
		t.Fatalf("revoke voice: %s", el.Bytes(nsClient))
	}
	if el := c.expect("bob silenced", occupantPresence(room1+"/Bob", "")); mucItem(el).Get("role") != "visitor" {
		t.Errorf("revoked voice presence: %s", el.Bytes(nsClient))
	}
	// The voice list.
	a.send(`<iq type='get' id='vl' to='%s'><query xmlns='%s'><item role='visitor'/></query></iq>`, room1, nsMUCAdmin)
	el = a.expect("visitor list", isIQResult("vl"))
	if items := el.Child(nsMUCAdmin, "query").Elements(); len(items) != 2 || items[0].Get("role") != "visitor" {
		t.Errorf("visitor list: %s", el.Bytes(nsClient))
	}
	// Nobody kicks the owner.
	if el := mucAdmin(a, room1, "self", `<item nick='Alice' role='none'/>`); stanzaErrorCond(el) != "conflict" {
		t.Errorf("kicking oneself: %s", el.Bytes(nsClient))
	}
	// Kick: carol is told (307, actor, reason), then alice gets the
	// result, then the others see carol go.
	a.send(`<iq type='set' id='kick' to='%s'><query xmlns='%s'><item nick='Carol' role='none'><reason>Enough</reason></item></query></iq>`, room1, nsMUCAdmin)
	el = c.expect("kicked", occupantPresence(room1+"/Carol", "unavailable"))
	it := mucItem(el)
	if !hasCodes(el, "110", "307") || it.Get("role") != "none" || it.ChildText(nsMUCUser, "reason") != "Enough" ||
		it.Child(nsMUCUser, "actor").Get("nick") != "Alice" {
		t.Errorf("kicked occupant's presence: %s", el.Bytes(nsClient))
	}
	el = a.expect("kick result", func(e *Element) bool {
		return isIQResult("kick")(e) || occupantPresence(room1+"/Carol", "unavailable")(e)
	})
	if el.Local != "iq" || el.Get("type") != "result" {
		t.Fatalf("the moderator should get the result before the others see the kick: %s", el.Bytes(nsClient))
	}
	if el := b.expect("carol kicked", occupantPresence(room1+"/Carol", "unavailable")); !hasCodes(el, "307") || hasCodes(el, "110") {
		t.Errorf("kick as others see it: %s", el.Bytes(nsClient))
	}
	// Ban: carol comes back, is banned by JID and removed with 301.
	mucJoin(c, room1, "Carol", "")
	if el := mucAdmin(a, room1, "ban", `<item affiliation='outcast' jid='carol@example.test'><reason>Out</reason></item>`); el.Get("type") != "result" {
		t.Fatalf("ban: %s", el.Bytes(nsClient))
	}
	el = c.expect("banned", occupantPresence(room1+"/Carol", "unavailable"))
	if !hasCodes(el, "110", "301") || mucItem(el).Get("affiliation") != "outcast" {
		t.Errorf("banned occupant's presence: %s", el.Bytes(nsClient))
	}
	if el := b.expect("carol banned", occupantPresence(room1+"/Carol", "unavailable")); !hasCodes(el, "301") {
		t.Errorf("ban as others see it: %s", el.Bytes(nsClient))
	}
	c.send(`<presence to='%s/Carol'><x xmlns='%s'/></presence>`, room1, nsMUC)
	if el := c.expect("refused", presenceError(room1)); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("banned user entering: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='bl' to='%s'><query xmlns='%s'><item affiliation='outcast'/></query></iq>`, room1, nsMUCAdmin)
	el = a.expect("ban list", isIQResult("bl"))
	items := el.Child(nsMUCAdmin, "query").Elements()
	if len(items) != 1 || items[0].Get("jid") != "carol@"+domain || items[0].ChildText(nsMUCAdmin, "reason") != "Out" {
		t.Errorf("ban list: %s", el.Bytes(nsClient))
	}
	// Membership for bob: he becomes a participant at once.
	if el := mucAdmin(a, room1, "mem", `<item affiliation='member' jid='bob@example.test' nick='Bob'/>`); el.Get("type") != "result" {
		t.Fatalf("membership: %s", el.Bytes(nsClient))
	}
	el = b.expect("member", selfPresence(room1+"/Bob"))
	if it := mucItem(el); it.Get("affiliation") != "member" || it.Get("role") != "participant" {
		t.Errorf("new member's presence: %s", el.Bytes(nsClient))
	}
	// An admin cannot be banned by a non-owner, nobody bans themselves,
	// and the last owner cannot step down.
	if el := mucAdmin(a, room1, "selfban", `<item affiliation='outcast' jid='alice@example.test'/>`); stanzaErrorCond(el) != "conflict" {
		t.Errorf("banning oneself: %s", el.Bytes(nsClient))
	}
	if el := mucAdmin(a, room1, "lastowner", `<item affiliation='member' jid='alice@example.test'/>`); stanzaErrorCond(el) != "conflict" {
		t.Errorf("last owner stepping down: %s", el.Bytes(nsClient))
	}
	if el := mucAdmin(b, room1, "memban", `<item affiliation='outcast' jid='alice@example.test'/>`); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("member banning: %s", el.Bytes(nsClient))
	}
	// Role and affiliation in one item is a bad request.
	if el := mucAdmin(a, room1, "both", `<item nick='Bob' role='moderator' affiliation='admin' jid='bob@example.test'/>`); stanzaErrorCond(el) != "bad-request" {
		t.Errorf("role and affiliation together: %s", el.Bytes(nsClient))
	}
}

func TestMUCMembersOnlyAndPassword(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucJoin(a, room1, "Alice", "")
	if el := mucConfigure(a, room1, map[string][]string{"muc#roomconfig_membersonly": {"1"}}); el.Get("type") != "result" {
		t.Fatalf("members-only: %s", el.Bytes(nsClient))
	}
	b.send(`<presence to='%s/Bob' id='j1'><x xmlns='%s'/></presence>`, room1, nsMUC)
	el := b.expect("refused", presenceError(room1))
	if stanzaErrorCond(el) != "registration-required" || el.Get("id") != "j1" || el.Get("from") != room1+"/Bob" {
		t.Fatalf("non-member entering: %s", el.Bytes(nsClient))
	}
	mucAdmin(a, room1, "m1", `<item affiliation='member' jid='bob@example.test'/>`)
	mucJoin(b, room1, "Bob", "")
	// The member list is for admins (and members of non-anonymous rooms).
	b.send(`<iq type='get' id='ml' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>`, room1, nsMUCAdmin)
	if el := b.expect("member list", isIQResult("ml")); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("member reading the member list of a semi-anonymous room: %s", el.Bytes(nsClient))
	}
	// Revoking membership removes bob with 321.
	mucAdmin(a, room1, "m2", `<item affiliation='none' jid='bob@example.test'/>`)
	if el := b.expect("removed", occupantPresence(room1+"/Bob", "unavailable")); !hasCodes(el, "321") {
		t.Errorf("removed member: %s", el.Bytes(nsClient))
	}

	room2 := "room2@" + mucDomain
	mucJoin(a, room2, "Alice", "")
	if el := mucConfigure(a, room2, map[string][]string{"muc#roomconfig_roomsecret": {"open sesame"}}); el.Get("type") != "result" {
		t.Fatalf("password: %s", el.Bytes(nsClient))
	}
	b.send(`<presence to='%s/Bob'><x xmlns='%s'/></presence>`, room2, nsMUC)
	el = b.expect("refused", presenceError(room2))
	if stanzaErrorCond(el) != "not-authorized" || el.Child(nsClient, "error").Get("type") != "auth" {
		t.Fatalf("no password: %s", el.Bytes(nsClient))
	}
	b.send(`<presence to='%s/Bob'><x xmlns='%s'><password>guess-1234</password></x></presence>`, room2, nsMUC)
	el = b.expect("refused", presenceError(room2))
	if stanzaErrorCond(el) != "not-authorized" || strings.Contains(string(el.Bytes(nsClient)), "guess-1234") {
		t.Fatalf("wrong password (and the error must not echo it): %s", el.Bytes(nsClient))
	}
	mucJoin(b, room2, "Bob", "<password>open sesame</password>")
}

func TestMUCNicknames(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	b2 := h.online("bob", "phone")
	mucCreate(a, room1, "Alice")
	// Taken by someone else, in any case: 409 conflict.
	b.send(`<presence to='%s/alice'><x xmlns='%s'/></presence>`, room1, nsMUC)
	el := b.expect("conflict", presenceError(room1))
	if stanzaErrorCond(el) != "conflict" || el.Child(nsClient, "error").Get("type") != "cancel" {
		t.Fatalf("nick conflict: %s", el.Bytes(nsClient))
	}
	// Normalised by the service: 210.
	b.send(`<presence to='%s/Bob  Smith'><x xmlns='%s'/></presence>`, room1, nsMUC)
	el = b.expect("self", selfPresence(room1+"/Bob Smith"))
	if !hasCodes(el, "210") {
		t.Errorf("a nickname the service changed needs 210: %s", el.Bytes(nsClient))
	}
	b.expect("subject", isSubject(room1))
	// The same user may share the nickname from another resource.
	self := mucJoin(b2, room1, "Bob Smith", "")
	if mucItem(self).Get("role") != "participant" {
		t.Errorf("second session: %s", self.Bytes(nsClient))
	}
	// Both sessions receive room messages.
	a.send(`<message type='groupchat' to='%s'><body>to both</body></message>`, room1)
	b.expect("first session", isGroupchat("to both"))
	b2.expect("second session", isGroupchat("to both"))
	// A nickname change: 303 with the new nick, then the new presence.
	b.send(`<presence to='%s/Robert' id='nc'/>`, room1)
	el = a.expect("old nick goes", occupantPresence(room1+"/Bob Smith", "unavailable"))
	if !hasCodes(el, "303") || mucItem(el).Get("nick") != "Robert" {
		t.Errorf("nick change as others see it: %s", el.Bytes(nsClient))
	}
	a.expect("new nick", occupantPresence(room1+"/Robert", ""))
	el = b.expect("own old nick", occupantPresence(room1+"/Bob Smith", "unavailable"))
	if !hasCodes(el, "110", "303") {
		t.Errorf("own nick change: %s", el.Bytes(nsClient))
	}
	b.expect("own new nick", selfPresence(room1+"/Robert"))
	// Presence from outside the room, without the MUC extension: the
	// sender learns it is not in (110, 307, 333).
	c := h.online("carol", "desk")
	c.send(`<presence to='%s/Carol'/>`, room1)
	el = c.expect("not in", occupantPresence(room1+"/Carol", "unavailable"))
	if !hasCodes(el, "110", "307", "333") {
		t.Errorf("presence from a non-occupant: %s", el.Bytes(nsClient))
	}
	// No nickname at all.
	c.send(`<presence to='%s'><x xmlns='%s'/></presence>`, room1, nsMUC)
	if el := c.expect("no nick", presenceError(room1)); stanzaErrorCond(el) != "jid-malformed" {
		t.Errorf("presence without a nick: %s", el.Bytes(nsClient))
	}
}

func TestMUCPrivateMessagesAndSubject(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	b.send(`<message type='chat' to='%s/Alice' id='pm1'><body>psst</body></message>`, room1)
	el := a.expect("pm", isChat("psst"))
	if el.Get("from") != room1+"/Bob" || el.Get("to") != a.jid || el.Child(nsMUCUser, "x") == nil || el.Get("id") != "pm1" {
		t.Errorf("private message: %s", el.Bytes(nsClient))
	}
	b.send(`<message type='chat' to='%s/Nobody'><body>hello?</body></message>`, room1)
	if el := b.expect("no such occupant", isStanza("message", "error")); stanzaErrorCond(el) != "item-not-found" {
		t.Errorf("pm to nobody: %s", el.Bytes(nsClient))
	}
	b.send(`<message type='groupchat' to='%s/Alice'><body>wrong type</body></message>`, room1)
	if el := b.expect("bad request", isStanza("message", "error")); stanzaErrorCond(el) != "bad-request" {
		t.Errorf("groupchat pm: %s", el.Bytes(nsClient))
	}
	c := h.online("carol", "desk")
	c.send(`<message type='chat' to='%s/Alice'><body>from outside</body></message>`, room1)
	if el := c.expect("not an occupant", isStanza("message", "error")); stanzaErrorCond(el) != "not-acceptable" {
		t.Errorf("pm from outside: %s", el.Bytes(nsClient))
	}
	c.send(`<message type='groupchat' to='%s'><body>from outside</body></message>`, room1)
	if el := c.expect("not an occupant", isStanza("message", "error")); stanzaErrorCond(el) != "not-acceptable" {
		t.Errorf("groupchat from outside: %s", el.Bytes(nsClient))
	}
	// Only moderators change the subject by default.
	b.send(`<message type='groupchat' to='%s' id='sub'><subject>mine</subject></message>`, room1)
	if el := b.expect("forbidden", isStanza("message", "error")); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("participant changing the subject: %s", el.Bytes(nsClient))
	}
	a.send(`<message type='groupchat' to='%s' id='sub2'><subject>Ours</subject></message>`, room1)
	el = b.expect("subject", isSubject(room1))
	if el.ChildText(nsClient, "subject") != "Ours" || el.Get("from") != room1+"/Alice" || el.Get("id") != "sub2" || el.Child(nsDelay, "delay") != nil {
		t.Errorf("live subject change: %s", el.Bytes(nsClient))
	}
	// Private messages off.
	mucConfigure(a, room1, map[string][]string{"muc#roomconfig_allowpm": {"none"}})
	b.send(`<message type='chat' to='%s/Alice'><body>psst again</body></message>`, room1)
	if el := b.expect("forbidden", isStanza("message", "error")); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("pm when none are allowed: %s", el.Bytes(nsClient))
	}
}

func TestMUCInvitations(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucJoin(a, room1, "Alice", "")
	mucConfigure(a, room1, map[string][]string{"muc#roomconfig_membersonly": {"1"}, "muc#roomconfig_roomsecret": {"pw"}})
	// Mediated (XEP-0045 7.8.2): the room passes it on with the inviter
	// and the password, and makes bob a member.
	a.send(`<message to='%s' id='inv1'><x xmlns='%s'><invite to='bob@example.test'><reason>Join us</reason></invite></x></message>`, room1, nsMUCUser)
	el := b.expect("invitation", func(e *Element) bool { return e.Local == "message" && e.Get("from") == room1 })
	x := el.Child(nsMUCUser, "x")
	inv := x.Child(nsMUCUser, "invite")
	if inv == nil || inv.Get("from") != a.jid || inv.ChildText(nsMUCUser, "reason") != "Join us" || x.ChildText(nsMUCUser, "password") != "pw" {
		t.Fatalf("mediated invitation: %s", el.Bytes(nsClient))
	}
	mucJoin(b, room1, "Bob", "<password>pw</password>")
	// Declining goes back to the inviter through the room.
	c := h.online("carol", "desk")
	a.send(`<message to='%s'><x xmlns='%s'><invite to='carol@example.test'/></x></message>`, room1, nsMUCUser)
	c.expect("invitation", func(e *Element) bool { return e.Local == "message" && e.Get("from") == room1 })
	c.send(`<message to='%s'><x xmlns='%s'><decline to='alice@example.test'><reason>Busy</reason></decline></x></message>`, room1, nsMUCUser)
	el = a.expect("decline", func(e *Element) bool {
		x := e.Child(nsMUCUser, "x")
		return e.Local == "message" && x != nil && x.Child(nsMUCUser, "decline") != nil
	})
	if d := el.Child(nsMUCUser, "x").Child(nsMUCUser, "decline"); d.Get("from") != "carol@"+domain || d.ChildText(nsMUCUser, "reason") != "Busy" || el.Get("from") != room1 {
		t.Errorf("decline: %s", el.Bytes(nsClient))
	}
	// A member may not invite to a members-only room unless allowed.
	h.dir.AddUser("erin@"+domain, "Erin", "pw-erin", true)
	b.send(`<message to='%s' id='inv2'><x xmlns='%s'><invite to='erin@example.test'/></x></message>`, room1, nsMUCUser)
	if el := b.expect("forbidden", isStanza("message", "error")); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("member inviting: %s", el.Bytes(nsClient))
	}
	// Unknown invitee.
	a.send(`<message to='%s' id='inv3'><x xmlns='%s'><invite to='nobody@example.test'/></x></message>`, room1, nsMUCUser)
	if el := a.expect("no such user", isStanza("message", "error")); stanzaErrorCond(el) != "item-not-found" {
		t.Errorf("inviting nobody: %s", el.Bytes(nsClient))
	}
	// Direct (XEP-0249): user to user, the server routes it unchanged.
	room2 := "room2@" + mucDomain
	mucJoin(a, room2, "Alice", "")
	mucConfigure(a, room2, map[string][]string{"muc#roomconfig_roomsecret": {"pw2"}})
	a.send(`<message to='carol@example.test' id='direct'><x xmlns='jabber:x:conference' jid='%s' password='pw2' reason='Come in'/></message>`, room2)
	el = c.expect("direct invitation", func(e *Element) bool { return e.Local == "message" && e.Child("jabber:x:conference", "x") != nil })
	dx := el.Child("jabber:x:conference", "x")
	if dx.Get("jid") != room2 || dx.Get("password") != "pw2" || dx.Get("reason") != "Come in" || el.Get("from") != a.jid {
		t.Errorf("direct invitation: %s", el.Bytes(nsClient))
	}
	mucJoin(c, dx.Get("jid"), "Carol", "<password>"+dx.Get("password")+"</password>")
}

func TestMUCArchive(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	var ids []string
	for i := 0; i < 6; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		c.send(`<message type='groupchat' to='%s'><body>m%d</body></message>`, room1, i)
		el := a.expect("reflection", isGroupchat(fmt.Sprintf("m%d", i)))
		ids = append(ids, el.Child(nsSID, "stanza-id").Get("id"))
	}
	// A chat state is reflected but not archived.
	a.send(`<message type='groupchat' to='%s'><composing xmlns='%s'/></message>`, room1, nsChatStat)
	b.expect("chat state", func(e *Element) bool { return e.Local == "message" && e.Child(nsChatStat, "composing") != nil })
	query := func(c *client, id, rsm string) (results []*Element, fin *Element) {
		c.t.Helper()
		c.send(`<iq type='set' id='%s' to='%s'><query xmlns='%s' queryid='q-%s'>%s</query></iq>`, id, room1, nsMAM, id, rsm)
		for {
			el := c.next()
			if el.Local == "iq" && el.Get("id") == id {
				return results, el
			}
			if r := el.Child(nsMAM, "result"); r != nil && el.Get("from") == room1 {
				results = append(results, el)
			}
		}
	}
	res, fin := query(b, "p1", `<set xmlns='http://jabber.org/protocol/rsm'><max>4</max><before/></set>`)
	if fin.Get("type") != "result" || len(res) != 4 {
		t.Fatalf("last page: %d results, %s", len(res), fin.Bytes(nsClient))
	}
	for i, el := range res {
		r := el.Child(nsMAM, "result")
		fw := r.Child(nsForward, "forwarded")
		m := fw.Child(nsClient, "message")
		if r.Get("id") != ids[2+i] || r.Get("queryid") != "q-p1" || m.ChildText(nsClient, "body") != fmt.Sprintf("m%d", 2+i) ||
			m.Get("type") != "groupchat" || m.Get("to") != "" || fw.Child(nsDelay, "delay") == nil {
			t.Errorf("result %d: %s", i, el.Bytes(nsClient))
		}
		wantFrom := room1 + "/Alice"
		if (2+i)%2 == 1 {
			wantFrom = room1 + "/Bob"
		}
		if m.Get("from") != wantFrom {
			t.Errorf("result %d from %s, want %s", i, m.Get("from"), wantFrom)
		}
		// Bob, a participant of a semi-anonymous room, does not see real
		// JIDs.
		if m.Child(nsMUCUser, "x") != nil {
			t.Errorf("real JID shown to a participant: %s", el.Bytes(nsClient))
		}
	}
	set := fin.Child(nsMAM, "fin").Child(nsRSM, "set")
	if fin.Child(nsMAM, "fin").Get("complete") == "true" || set.ChildText(nsRSM, "first") != ids[2] {
		t.Errorf("fin of the last page: %s", fin.Bytes(nsClient))
	}
	res, fin = query(b, "p2", fmt.Sprintf(`<set xmlns='http://jabber.org/protocol/rsm'><max>4</max><before>%s</before></set>`, ids[2]))
	if len(res) != 2 || fin.Child(nsMAM, "fin").Get("complete") != "true" {
		t.Errorf("page before: %d results, %s", len(res), fin.Bytes(nsClient))
	}
	// Alice, a moderator, sees the real JIDs.
	res, _ = query(a, "p3", `<set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set>`)
	if len(res) != 1 {
		t.Fatalf("alice's query: %d results", len(res))
	}
	m := res[0].Child(nsMAM, "result").Child(nsForward, "forwarded").Child(nsClient, "message")
	if x := m.Child(nsMUCUser, "x"); x == nil || x.Child(nsMUCUser, "item").Get("jid") != a.jid {
		t.Errorf("moderator should see the sender's JID: %s", res[0].Bytes(nsClient))
	}
	// Full-text search.
	res, _ = query(b, "p4", `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='{urn:xmpp:fulltext:0}fulltext'><value>m3</value></field></x>`)
	if len(res) != 1 {
		t.Errorf("full-text search: %d results", len(res))
	}
	// Outsiders of a members-only room may not read it.
	mucConfigure(a, room1, map[string][]string{"muc#roomconfig_membersonly": {"1"}})
	c := h.online("carol", "desk")
	c.send(`<iq type='set' id='p5' to='%s'><query xmlns='%s'/></iq>`, room1, nsMAM)
	if el := c.expect("forbidden", isIQResult("p5")); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("outsider reading a members-only archive: %s", el.Bytes(nsClient))
	}
	// The user's own archive has none of it.
	b.send(`<iq type='set' id='own'><query xmlns='%s'/></iq>`, nsMAM)
	for {
		el := b.next()
		if el.Local == "iq" && el.Get("id") == "own" {
			break
		}
		if el.Child(nsMAM, "result") != nil {
			t.Fatalf("room message in a user's archive: %s", el.Bytes(nsClient))
		}
	}
}

func TestMUCSelfPing(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	b.send(`<iq type='get' id='sp1' to='%s/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`, room1)
	if el := b.expect("pong", isIQResult("sp1")); el.Get("type") != "result" || el.Get("from") != room1+"/Bob" {
		t.Fatalf("self-ping while joined: %s", el.Bytes(nsClient))
	}
	// Another occupant's JID: the iq is passed on to alice's client
	// without bob's real JID, the answer comes back under bob's id.
	b.send(`<iq type='get' id='op1' to='%s/Alice'><query xmlns='jabber:iq:version'/></iq>`, room1)
	el := a.expect("forwarded iq", func(e *Element) bool { return e.Local == "iq" && e.Get("type") == "get" })
	if el.Get("from") != room1+"/Bob" || el.Get("to") != a.jid || el.Get("id") == "op1" {
		t.Fatalf("forwarded iq: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='result' id='%s' to='%s/Bob'><query xmlns='jabber:iq:version'><name>Test</name></query></iq>`, el.Get("id"), room1)
	el = b.expect("forwarded answer", isIQResult("op1"))
	if el.Get("type") != "result" || el.Get("from") != room1+"/Alice" || el.Child("jabber:iq:version", "query").ChildText("jabber:iq:version", "name") != "Test" {
		t.Fatalf("answer to the forwarded iq: %s", el.Bytes(nsClient))
	}
	b.send(`<presence to='%s/Bob' type='unavailable'/>`, room1)
	b.expect("left", occupantPresence(room1+"/Bob", "unavailable"))
	b.send(`<iq type='get' id='sp2' to='%s/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`, room1)
	el = b.expect("not joined", isIQResult("sp2"))
	if stanzaErrorCond(el) != "not-acceptable" || errorBy(el) != room1 {
		t.Fatalf("self-ping after leaving: %s", el.Bytes(nsClient))
	}
	// Non-occupants may not query occupants.
	b.send(`<iq type='get' id='di' to='%s/Alice'><query xmlns='%s'/></iq>`, room1, nsDiscoI)
	if el := b.expect("bad request", isIQResult("di")); stanzaErrorCond(el) != "bad-request" {
		t.Errorf("disco of an occupant from outside: %s", el.Bytes(nsClient))
	}
}

func TestMUCLeaveOnDisconnect(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	c := h.online("carol", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	mucJoin(c, room1, "Carol", "")
	// The connection drops without a word.
	b.conn.Close()
	el := a.expect("bob gone", occupantPresence(room1+"/Bob", "unavailable"))
	if mucItem(el).Get("role") != "none" {
		t.Errorf("departure: %s", el.Bytes(nsClient))
	}
	// Broadcast unavailable presence takes carol out too.
	c.send(`<presence type='unavailable'><status>bye</status></presence>`)
	a.expect("carol gone", occupantPresence(room1+"/Carol", "unavailable"))
	// Bob is really out: his nickname is free.
	d := h.online("bob", "laptop")
	mucJoin(d, room1, "Bob", "")
}

func TestMUCDestroy(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	b.send(`<iq type='set' id='d0' to='%s'><query xmlns='%s'><destroy/></query></iq>`, room1, nsMUCOwner)
	if el := b.expect("forbidden", isIQResult("d0")); stanzaErrorCond(el) != "forbidden" {
		t.Errorf("non-owner destroying: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='set' id='d1' to='%s'><query xmlns='%s'><destroy jid='room2@%s'><reason>Moved</reason></destroy></query></iq>`, room1, nsMUCOwner, mucDomain)
	el := b.expect("destroyed", occupantPresence(room1+"/Bob", "unavailable"))
	d := el.Child(nsMUCUser, "x").Child(nsMUCUser, "destroy")
	if d == nil || d.Get("jid") != "room2@"+mucDomain || d.ChildText(nsMUCUser, "reason") != "Moved" {
		t.Errorf("destroy presence: %s", el.Bytes(nsClient))
	}
	b.none(200*time.Millisecond, "alice's departure", occupantPresence(room1+"/Alice", "unavailable"))
	a.expect("result", isIQResult("d1"))
}

func TestMUCPersistentRoomSurvivesRestart(t *testing.T) {
	shared := memstore.New()
	share := withStore(func(storage.Store) storage.Store { return shared })
	h, _ := newMUCHarness(t, muc.Config{}, share)
	a := h.online("alice", "desk")
	mucJoin(a, room1, "Alice", "")
	mucConfigure(a, room1, map[string][]string{
		"muc#roomconfig_persistentroom": {"1"}, "muc#roomconfig_roomname": {"Keeps"}, "muc#roomconfig_membersonly": {"1"}})
	mucAdmin(a, room1, "m", `<item affiliation='member' jid='bob@example.test' nick='Bobby'/>`)
	a.send(`<message type='groupchat' to='%s'><subject>Still here</subject></message>`, room1)
	a.expect("subject", isSubject(room1))
	sayN(a, room1, 3, "before restart")
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	h2, _ := newMUCHarness(t, muc.Config{}, share)
	b := h2.online("bob", "desk")
	// Bob's reserved nickname is known.
	b.send(`<iq type='get' id='nick' to='%s'><query xmlns='%s' node='x-roomuser-item'/></iq>`, room1, nsDiscoI)
	el := b.expect("reserved nick", isIQResult("nick"))
	if id := el.Child(nsDiscoI, "query").Child(nsDiscoI, "identity"); id == nil || id.Get("name") != "Bobby" {
		t.Errorf("reserved nickname: %s", el.Bytes(nsClient))
	}
	b.send(`<presence to='%s/Bobby'><x xmlns='%s'/></presence>`, room1, nsMUC)
	self := b.expect("self", selfPresence(room1+"/Bobby"))
	if hasCodes(self, "201") || mucItem(self).Get("affiliation") != "member" {
		t.Errorf("after restart: %s", self.Bytes(nsClient))
	}
	var history []string
	for {
		el := b.next()
		if isSubject(room1)(el) {
			if el.ChildText(nsClient, "subject") != "Still here" {
				t.Errorf("subject after restart: %s", el.Bytes(nsClient))
			}
			break
		}
		if el.Local == "message" {
			history = append(history, el.ChildText(nsClient, "body"))
			if el.Get("from") != room1+"/Alice" || el.Child(nsMUCUser, "x") != nil {
				t.Errorf("history after restart: %s", el.Bytes(nsClient))
			}
		}
	}
	if !slices.Equal(history, []string{"before restart 0", "before restart 1", "before restart 2"}) {
		t.Errorf("history after restart: %q", history)
	}
	c := h2.online("carol", "desk")
	c.send(`<presence to='%s/Carol'><x xmlns='%s'/></presence>`, room1, nsMUC)
	if el := c.expect("members only", presenceError(room1)); stanzaErrorCond(el) != "registration-required" {
		t.Errorf("the room forgot it is members-only: %s", el.Bytes(nsClient))
	}
	c.send(`<iq type='get' id='items' to='%s'><query xmlns='%s'/></iq>`, mucDomain, nsDiscoIt)
	el = c.expect("rooms", isIQResult("items"))
	if items := el.Child(nsDiscoIt, "query").Elements(); len(items) != 1 || items[0].Get("name") != "Keeps" {
		t.Errorf("persistent room not listed: %s", el.Bytes(nsClient))
	}
}

func TestMUCAliasRooms(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{AliasRooms: true})
	a := h.online("alice", "desk")
	self := mucJoin(a, "sales@"+mucDomain, "Alice", "")
	if mucItem(self).Get("affiliation") != "member" || !hasCodes(self, "100") || hasCodes(self, "201") {
		t.Fatalf("alias member entering the alias's room: %s", self.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='items' to='%s'><query xmlns='%s'/></iq>`, mucDomain, nsDiscoIt)
	el := a.expect("rooms", isIQResult("items"))
	if items := el.Child(nsDiscoIt, "query").Elements(); len(items) != 1 || items[0].Get("jid") != "sales@"+mucDomain || items[0].Get("name") != "Sales" {
		t.Errorf("alias room listing: %s", el.Bytes(nsClient))
	}
	// Not a member of the alias: not in.
	h.dir.AddUser("erin@"+domain, "Erin", "pw-erin", true)
	e := h.online("erin", "desk")
	e.send(`<presence to='sales@%s/Erin'><x xmlns='%s'/></presence>`, mucDomain, nsMUC)
	if el := e.expect("refused", presenceError("sales@"+mucDomain)); stanzaErrorCond(el) != "registration-required" {
		t.Errorf("non-member entering an alias room: %s", el.Bytes(nsClient))
	}
	// A user that is neither alias nor room: an ordinary new room.
	b := h.online("bob", "desk")
	if self := mucJoin(b, "bob@"+mucDomain, "Bob", ""); !hasCodes(self, "201") {
		t.Errorf("new room: %s", self.Bytes(nsClient))
	}
}

func TestMUCVoiceRequest(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucJoin(a, room1, "Alice", "")
	mucConfigure(a, room1, map[string][]string{"muc#roomconfig_moderatedroom": {"1"}})
	mucJoin(b, room1, "Bob", "")
	b.send(`<message to='%s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field><field var='muc#role'><value>participant</value></field></x></message>`, room1, nsMUCRequest)
	el := a.expect("approval form", func(e *Element) bool { return e.Local == "message" && e.Child(nsXData, "x") != nil })
	v := formValues(el.Child(nsXData, "x"))
	if el.Get("from") != room1 || v["FORM_TYPE"][0] != nsMUCRequest || v["muc#roomnick"][0] != "Bob" || v["muc#jid"][0] != b.jid || v["muc#request_allow"][0] != "0" {
		t.Fatalf("approval form: %s", el.Bytes(nsClient))
	}
	a.send(`<message to='%s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field><field var='muc#role'><value>participant</value></field><field var='muc#jid'><value>%s</value></field><field var='muc#roomnick'><value>Bob</value></field><field var='muc#request_allow'><value>true</value></field></x></message>`, room1, nsMUCRequest, b.jid)
	if el := b.expect("voice", selfPresence(room1+"/Bob")); mucItem(el).Get("role") != "participant" {
		t.Fatalf("approved voice: %s", el.Bytes(nsClient))
	}
	// With voice, asking again is not acceptable.
	b.send(`<message to='%s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field></x></message>`, room1, nsMUCRequest)
	if el := b.expect("refused", isStanza("message", "error")); stanzaErrorCond(el) != "not-acceptable" {
		t.Errorf("voice request with voice: %s", el.Bytes(nsClient))
	}
}

// BenchmarkMUCGroupchat measures a room end to end over TCP: one occupant
// says b.N messages, archived, and nine others receive each.
func BenchmarkMUCGroupchat(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func(b *testing.B) storage.Store
	}{
		{"memstore", func(*testing.B) storage.Store { return memstore.New() }},
		{"boltstore", func(b *testing.B) storage.Store {
			st, err := boltstore.Open(filepath.Join(b.TempDir(), "parley.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st := tc.store(b)
			h, _ := newMUCHarness(b, muc.Config{}, withStore(func(storage.Store) storage.Store { return st }))
			users := []string{"alice", "bob", "carol"}
			var clients []*client
			for i := 0; i < 10; i++ {
				c := h.online(users[i%3], fmt.Sprintf("r%d", i))
				if i == 0 {
					mucCreate(c, room1, "n0")
				} else {
					mucJoin(c, room1, fmt.Sprintf("n%d", i), "<history maxchars='0'/>")
				}
				clients = append(clients, c)
			}
			// Let the join presences settle.
			for _, c := range clients {
				c.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
				c.expect("sync", isIQResult("sync"))
			}
			b.ResetTimer()
			done := make(chan error, len(clients)-1)
			for _, c := range clients[1:] {
				go func() {
					n := 0
					for n < b.N {
						el, err := c.read(10 * time.Second)
						if err != nil {
							done <- err
							return
						}
						if el.Local == "message" && el.Get("type") == "groupchat" && el.Child(nsClient, "body") != nil {
							n++
						}
					}
					done <- nil
				}()
			}
			for i := 0; i < b.N; i++ {
				clients[0].send(`<message type='groupchat' to='%s'><body>message %d</body></message>`, room1, i)
			}
			for range clients[1:] {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// A message the store refuses reaches nobody and bounces to its sender.
func TestMUCArchiveFailureBounces(t *testing.T) {
	var faulty *storagetest.Faulty
	h, _ := newMUCHarness(t, muc.Config{}, withStore(func(s storage.Store) storage.Store {
		faulty = &storagetest.Faulty{Store: s, FailAfter: -1}
		return faulty
	}))
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	faulty.SetFailAfter(0)
	a.send(`<message type='groupchat' to='%s' id='lost'><body>lost?</body></message>`, room1)
	el := a.expect("bounce", isStanza("message", "error"))
	if stanzaErrorCond(el) != "internal-server-error" || el.Get("id") != "lost" || el.ChildText(nsClient, "body") != "lost?" {
		t.Fatalf("store failure: %s", el.Bytes(nsClient))
	}
	b.none(200*time.Millisecond, "the unstored message", isGroupchat("lost?"))
	faulty.SetFailAfter(-1)
	a.send(`<message type='groupchat' to='%s'><body>kept</body></message>`, room1)
	b.expect("kept", isGroupchat("kept"))
}

func registerForm(nick string) string {
	return fmt.Sprintf(`<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field><field var='muc#register_roomnick'><value>%s</value></field></x></query>`, nsMUCRegister, nick)
}

// XEP-0045 7.10: registration with a room reserves a nickname and makes
// the user a member; the nickname is then refused to everyone else;
// members-only rooms take registrations only from their members;
// <remove/> cancels it.
func TestMUCRegistration(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	c := h.online("carol", "desk")
	mucCreate(a, room1, "Alice")

	info := ok(t, b.iq("get", room1, `<query xmlns='http://jabber.org/protocol/disco#info'/>`))
	if !strings.Contains(string(info.Bytes(nsClient)), `var="jabber:iq:register"`) {
		t.Fatalf("room disco lacks jabber:iq:register: %s", info.Bytes(nsClient))
	}
	form := ok(t, b.iq("get", room1, `<query xmlns='jabber:iq:register'/>`)).Child(nsRegister, "query").Child(nsXData, "x")
	if form == nil || formType(form) != nsMUCRegister || !strings.Contains(string(form.Bytes("")), `var="muc#register_roomnick"`) {
		t.Fatalf("registration form: %v", form)
	}
	for _, bad := range []struct{ payload, cond string }{
		{registerForm(""), "not-acceptable"},
		{`<query xmlns='jabber:iq:register'/>`, "bad-request"},
		{strings.Replace(registerForm("x"), nsMUCRegister, "urn:other", 1), "bad-request"},
		{registerForm("Alice"), "conflict"}, // in use by another occupant
	} {
		if cond := stanzaErrorCond(b.iq("set", room1, bad.payload)); cond != bad.cond {
			t.Errorf("%s: %q, want %q", bad.payload, cond, bad.cond)
		}
	}
	ok(t, b.iq("set", room1, registerForm("Bobby")))
	q := ok(t, b.iq("get", room1, `<query xmlns='jabber:iq:register'/>`)).Child(nsRegister, "query")
	if q.Child(nsRegister, "registered") == nil || q.ChildText(nsRegister, "username") != "Bobby" {
		t.Fatalf("after registering: %s", q.Bytes(""))
	}
	// XEP-0045 7.12: the reserved nickname by disco.
	n := ok(t, b.iq("get", room1, `<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>`))
	if id := n.Child(nsDiscoI, "query").Child(nsDiscoI, "identity"); id == nil || id.Get("name") != "Bobby" {
		t.Fatalf("reserved nick by disco: %s", n.Bytes(nsClient))
	}
	// Bob is on the member list.
	ml := ok(t, a.iq("get", room1, `<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query>`))
	if !strings.Contains(string(ml.Bytes(nsClient)), `jid="bob@example.test"`) {
		t.Fatalf("member list: %s", ml.Bytes(nsClient))
	}
	// The nickname is refused to carol, entering or registering, in any case.
	c.send(`<presence to='%s/bobby' id='j1'><x xmlns='%s'/></presence>`, room1, nsMUC)
	el := c.expect("conflict", func(e *Element) bool { return e.Local == "presence" && e.Get("type") == "error" })
	if stanzaErrorCond(el) != "conflict" {
		t.Fatalf("reserved nickname: %s", el.Bytes(nsClient))
	}
	if cond := stanzaErrorCond(c.iq("set", room1, registerForm("BOBBY"))); cond != "conflict" {
		t.Errorf("registering a reserved nickname: %q", cond)
	}
	mucJoin(b, room1, "Bobby", "")

	// Members-only: outsiders may not register; members may.
	room2 := "room2@" + mucDomain
	mucCreate(a, room2, "Alice")
	mucConfigure(a, room2, map[string][]string{"muc#roomconfig_membersonly": {"1"}})
	if cond := stanzaErrorCond(c.iq("set", room2, registerForm("Carol"))); cond != "not-allowed" {
		t.Errorf("registering with a members-only room from outside: %q", cond)
	}
	ok(t, a.iq("set", room2, `<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='carol@example.test'/></query>`))
	ok(t, c.iq("set", room2, registerForm("Carol")))

	// Cancelling frees the nickname and the membership.
	ok(t, b.iq("set", room1, `<query xmlns='jabber:iq:register'><remove/></query>`))
	q = ok(t, b.iq("get", room1, `<query xmlns='jabber:iq:register'/>`)).Child(nsRegister, "query")
	if q.Child(nsRegister, "registered") != nil {
		t.Fatalf("still registered: %s", q.Bytes(""))
	}
	if cond := stanzaErrorCond(b.iq("set", room1, `<query xmlns='jabber:iq:register'><remove/></query>`)); cond != "item-not-found" {
		t.Errorf("removing twice: %q", cond)
	}
}

// An occupant whose session vanished without the room being told (here:
// unbound behind the room's back) is removed at the next delivery, with
// status 333, and a self-ping from that address then says not joined.
func TestMUCGhostRemoval(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	a.expect("bob joined", occupantPresence(room1+"/Bob", ""))
	for _, s := range h.srv.router.Resources("bob@example.test") {
		h.srv.router.Unbind(s)
	}
	a.send(`<message type='groupchat' to='%s'><body>anyone?</body></message>`, room1)
	el := a.expect("ghost removed", occupantPresence(room1+"/Bob", "unavailable"))
	if !hasCodes(el, "333") {
		t.Fatalf("ghost removal without 333: %s", el.Bytes(nsClient))
	}
	b.send(`<iq type='get' id='sp' to='%s/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`, room1)
	if el := b.expect("self-ping", isIQResult("sp")); stanzaErrorCond(el) != "not-acceptable" {
		t.Fatalf("self-ping of a removed ghost: %s", el.Bytes(nsClient))
	}
}

// The sweep finds ghosts in rooms where nothing is said.
func TestMUCGhostSweep(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{GhostSweep: 200 * time.Millisecond})
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	mucCreate(a, room1, "Alice")
	mucJoin(b, room1, "Bob", "")
	a.expect("bob joined", occupantPresence(room1+"/Bob", ""))
	for _, s := range h.srv.router.Resources("bob@example.test") {
		h.srv.router.Unbind(s)
	}
	if el := a.expect("ghost swept", occupantPresence(room1+"/Bob", "unavailable")); !hasCodes(el, "333") {
		t.Fatalf("sweep without 333: %s", el.Bytes(nsClient))
	}
}
