package xmppsrv

import (
	"sync/atomic"
	"testing"

	"github.com/parleyhq/parley/jid"
)

type echoComponent struct{ gone atomic.Int32 }

func (*echoComponent) Subdomain() string                  { return "echo" }
func (*echoComponent) Identity() (string, string, string) { return "component", "generic", "Echo" }
func (*echoComponent) Features() []string                 { return []string{"urn:example:echo"} }
func (c *echoComponent) Gone(*Session)                    { c.gone.Add(1) }
func (*echoComponent) Handle(s *Session, el *Element, to jid.JID) {
	if el.Local == "message" {
		r := NewElement(nsClient, "message", "from", to.String(), "to", s.Full().String(), "type", "chat").
			Add(NewElement(nsClient, "body").AddText("echo: " + el.ChildText(nsClient, "body")))
		s.Deliver(r)
	}
}

type noteHandler struct{}

func (noteHandler) Namespace() string                    { return "urn:example:note" }
func (noteHandler) Features() (account, server []string) { return []string{"urn:example:note"}, nil }
func (noteHandler) HandleIQ(s *Session, el, p *Element, owner jid.JID) bool {
	return s.Reply(el, NewElement("urn:example:note", "note").AddText("owner "+owner.String()))
}

func TestExtensions(t *testing.T) {
	h := newHarness(t)
	comp := &echoComponent{}
	h.srv.Extend([]Component{comp}, []AccountHandler{noteHandler{}})
	a := h.online("alice", "desk")
	a.send(`<message to='room@echo.example.test' type='chat'><body>hi</body></message>`)
	if el := a.expect("echo", isChat("echo: hi")); el.Get("from") != "room@echo.example.test" {
		t.Fatalf("echo: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='it' to='example.test'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	el := a.expect("items", isIQResult("it"))
	found := false
	for _, it := range el.Child(nsDiscoIt, "query").Elements() {
		found = found || it.Get("jid") == "echo.example.test"
	}
	if !found {
		t.Fatalf("component not listed: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='n' to='bob@example.test'><note xmlns='urn:example:note'/></iq>`)
	if el := a.expect("note", isIQResult("n")); el.ChildText("urn:example:note", "note") != "owner bob@example.test" {
		t.Fatalf("account handler: %s", el.Bytes(nsClient))
	}
	a.send(`<presence type='unavailable'/>`)
	a.send(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.expect("sync", isIQResult("sync"))
	if comp.gone.Load() == 0 {
		t.Fatal("the component was not told the session went unavailable")
	}
}
