package xmppsrv

import (
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/muc"
	"github.com/parleyhq/parley/roster"
)

// recordingRemote stands for federation: it records what the server hands
// it for other servers.
type recordingRemote struct {
	mu  sync.Mutex
	got []*Element
	ch  chan struct{}
}

func newRecordingRemote() *recordingRemote { return &recordingRemote{ch: make(chan struct{}, 1000)} }

func (r *recordingRemote) Send(el *Element) {
	r.mu.Lock()
	r.got = append(r.got, el.Copy())
	r.mu.Unlock()
	r.ch <- struct{}{}
}

// expect waits for a stanza handed to federation that matches.
func (r *recordingRemote) expect(t *testing.T, what string, match func(*Element) bool) *Element {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		for i, el := range r.got {
			if match(el) {
				r.got = append(r.got[:i], r.got[i+1:]...)
				r.mu.Unlock()
				return el
			}
		}
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			var seen []string
			for _, el := range r.got {
				seen = append(seen, string(el.Bytes(nsClient)))
			}
			t.Fatalf("federation never got %s; it got %q", what, seen)
		}
	}
}

func (r *recordingRemote) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// TestTwoLocalDomainsNeverUseFederation: a host with two mail domains in
// one Server; their users subscribe, see presence and chat without any
// stanza reaching federation.
func TestTwoLocalDomainsNeverUseFederation(t *testing.T) {
	h := newHarness(t, noDomainRoster, opt(func(c *Config, _ *roster.Config) { c.Domains = append(c.Domains, "other.test") }))
	if err := h.dir.AddUser("zed@other.test", "Zed", "pw-zed@other.test", true); err != nil {
		t.Fatal(err)
	}
	remote := newRecordingRemote()
	h.srv.SetRemote(remote)
	alice := h.online("alice", "a")
	zed := h.online("zed@other.test", "z")
	alice.send(`<presence to='zed@other.test' type='subscribe'/>`)
	zed.expect("subscribe", presenceFrom("alice@"+domain, "subscribe"))
	zed.send(`<presence to='alice@%s' type='subscribed'/>`, domain)
	alice.expect("subscribed", presenceFrom("zed@other.test", "subscribed"))
	alice.expect("zed's presence", presenceFrom("zed@other.test/z", ""))
	alice.send(`<message to='zed@other.test' type='chat'><body>same server</body></message>`)
	zed.expect("message", isChat("same server"))
	zed.send(`<iq type='get' id='v1' to='alice@%s'><vCard xmlns='vcard-temp'/></iq>`, domain)
	zed.expect("vCard", isIQResult("v1"))
	time.Sleep(100 * time.Millisecond)
	if n := remote.count(); n != 0 {
		t.Fatalf("%d stanzas between two local domains went to federation", n)
	}
}

// TestRemoteRouting: stanzas to other domains go to the Remote, archived
// first; stanzas from other servers come in through Deliver.
func TestRemoteRouting(t *testing.T) {
	h := newHarness(t, withArchive, noDomainRoster)
	remote := newRecordingRemote()
	h.srv.SetRemote(remote)
	alice := h.online("alice", "a")
	alice.send(`<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	alice.expect("carbons on", isIQResult("c1"))
	alice2 := h.online("alice", "b")
	alice2.send(`<iq type='set' id='c2'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	alice2.expect("carbons on", isIQResult("c2"))

	// Outbound message: archived, handed over from the full JID without
	// this server's stanza-id, carbon-copied to the other resource.
	alice.send(`<message to='bob@remote.test' type='chat' id='m1'><body>to the other server</body><stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='alice@%s'/></message>`, domain)
	out := remote.expect(t, "the message", func(e *Element) bool { return e.Local == "message" })
	if out.Get("from") != "alice@"+domain+"/a" || out.Get("to") != "bob@remote.test" || out.Child(nsSID, "stanza-id") != nil {
		t.Fatalf("handed over %s", out.Bytes(nsClient))
	}
	alice2.expect("sent carbon", func(e *Element) bool { return e.Child(nsCarbons, "sent") != nil })

	// Inbound message: archived for alice, with a stanza-id, to her
	// resources by priority.
	h.srv.Deliver(parseOrDie(t, `<message xmlns='jabber:client' from='bob@remote.test/x' to='alice@`+domain+`' type='chat' id='r1'><body>from the other server</body><stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='alice@`+domain+`'/></message>`))
	in := alice.expect("inbound", isChat("from the other server"))
	sids := 0
	for _, c := range in.Elements() {
		if c.Space == nsSID && c.Local == "stanza-id" {
			sids++
			if c.Get("id") == "forged" {
				t.Fatal("a remote server's stanza-id in our name was kept")
			}
		}
	}
	if sids != 1 {
		t.Fatalf("inbound message has %d stanza-ids: %s", sids, in.Bytes(nsClient))
	}
	bodies, _, _ := mamPage(t, alice, "q1", `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>bob@remote.test</value></field></x>`, "")
	if len(bodies) != 2 || bodies[0] != "to the other server" || bodies[1] != "from the other server" {
		t.Fatalf("MAM with the remote contact: %q", bodies)
	}

	// Addressed to one resource: the other gets a "received" carbon.
	h.srv.Deliver(parseOrDie(t, `<message xmlns='jabber:client' from='bob@remote.test/x' to='alice@`+domain+`/a' type='chat'><body>to your phone</body></message>`))
	alice.expect("to the resource", isChat("to your phone"))
	alice2.expect("received carbon", func(e *Element) bool {
		rc := e.Child(nsCarbons, "received")
		return rc != nil && rc.Child(nsForward, "forwarded").Child(nsClient, "message").ChildText(nsClient, "body") == "to your phone"
	})

	// Inbound message for someone who does not exist: an error goes back.
	h.srv.Deliver(parseOrDie(t, `<message xmlns='jabber:client' from='bob@remote.test/x' to='nobody@`+domain+`' type='chat'><body>?</body></message>`))
	e := remote.expect(t, "an error back", func(e *Element) bool { return e.Get("type") == "error" })
	if stanzaErrorCond(e) != "service-unavailable" || e.Get("to") != "bob@remote.test/x" {
		t.Fatalf("answered %s", e.Bytes(nsClient))
	}

	// Subscription from the remote contact, approved by alice: the
	// approval and alice's presence go out.
	h.srv.Deliver(parseOrDie(t, `<presence xmlns='jabber:client' from='bob@remote.test' to='alice@`+domain+`' type='subscribe'/>`))
	alice.expect("subscription request", presenceFrom("bob@remote.test", "subscribe"))
	alice.send(`<presence to='bob@remote.test' type='subscribed'/>`)
	remote.expect(t, "subscribed", func(e *Element) bool {
		return e.Local == "presence" && e.Get("type") == "subscribed" && e.Get("from") == "alice@"+domain
	})
	remote.expect(t, "alice's presence", func(e *Element) bool {
		return e.Local == "presence" && e.Get("type") == "" && e.Get("to") == "bob@remote.test"
	})
	// A probe from bob's server is answered with alice's resources.
	h.srv.Deliver(parseOrDie(t, `<presence xmlns='jabber:client' from='bob@remote.test' to='alice@`+domain+`' type='probe'/>`))
	remote.expect(t, "probe answer", func(e *Element) bool {
		return e.Local == "presence" && e.Get("type") == "" && e.Get("from") == "alice@"+domain+"/a"
	})
	// A probe from someone not subscribed gets nothing.
	h.srv.Deliver(parseOrDie(t, `<presence xmlns='jabber:client' from='eve@remote.test' to='alice@`+domain+`' type='probe'/>`))
	// Server queries from the other server are answered.
	h.srv.Deliver(parseOrDie(t, `<iq xmlns='jabber:client' from='remote.test' to='`+domain+`' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>`))
	v := remote.expect(t, "version", func(e *Element) bool { return e.Local == "iq" && e.Get("id") == "v1" })
	if v.Get("type") != "result" || v.Child(nsVersion, "query") == nil {
		t.Fatalf("version answered %s", v.Bytes(nsClient))
	}
	// A client's iq to a remote user goes out, and the answer comes back.
	alice.send(`<iq type='get' id='vc' to='bob@remote.test'><vCard xmlns='vcard-temp'/></iq>`)
	remote.expect(t, "vCard query", func(e *Element) bool { return e.Local == "iq" && e.Get("id") == "vc" })
	h.srv.Deliver(parseOrDie(t, `<iq xmlns='jabber:client' from='bob@remote.test' to='alice@`+domain+`/a' type='result' id='vc'><vCard xmlns='vcard-temp'><FN>Bob</FN></vCard></iq>`))
	alice.expect("vCard result", isIQResult("vc"))
	// Logout: unavailable goes to the remote subscriber.
	alice2.conn.Close()
	alice.send(`<presence type='unavailable'/>`)
	remote.expect(t, "unavailable", func(e *Element) bool {
		return e.Local == "presence" && e.Get("type") == "unavailable" && e.Get("to") == "bob@remote.test"
	})
	remote.mu.Lock()
	defer remote.mu.Unlock()
	for _, el := range remote.got {
		if el.Get("to") == "eve@remote.test" {
			t.Fatalf("an unsubscribed prober got %s", el.Bytes(nsClient))
		}
	}
}

func TestNoFederationAnswersRemoteServerNotFound(t *testing.T) {
	h := newHarness(t)
	alice := h.online("alice", "a")
	alice.send(`<presence to='bob@remote.test' type='subscribe'/>`)
	alice.send(`<iq type='get' id='p1' to='remote.test'><ping xmlns='urn:xmpp:ping'/></iq>`)
	e := alice.expect("ping error", isIQResult("p1"))
	if e.Get("type") != "error" || stanzaErrorCond(e) != "remote-server-not-found" {
		t.Fatalf("ping to another server without federation: %s", e.Bytes(nsClient))
	}
}

func parseOrDie(t *testing.T, s string) *Element {
	t.Helper()
	el, err := parseElement([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return el
}

// TestRouteNeverSendsLocalServicesRemote: a stanza the server itself
// routes to one of its services (conference.<domain>) never goes to
// federation.
func TestRouteNeverSendsLocalServicesRemote(t *testing.T) {
	h, _ := newMUCHarness(t, muc.Config{})
	remote := newRecordingRemote()
	h.srv.SetRemote(remote)
	alice := h.online("alice", "a")
	h.srv.Route(NewElement(nsClient, "message", "from", alice.jid, "to", "room@"+mucDomain, "type", "chat"))
	e := alice.expect("an error", func(e *Element) bool { return e.Local == "message" && e.Get("type") == "error" })
	if stanzaErrorCond(e) != "service-unavailable" {
		t.Fatalf("answered %s", e.Bytes(nsClient))
	}
	h.srv.Route(NewElement(nsClient, "message", "from", alice.jid, "to", "bob@remote.test", "type", "chat"))
	remote.expect(t, "the remote one", func(e *Element) bool { return e.Get("to") == "bob@remote.test" })
	if remote.count() != 0 {
		t.Fatal("a stanza to a local service reached federation")
	}
}
