package xmppsrv

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

const (
	nsMAM      = "urn:xmpp:mam:2"
	nsMAMExt   = "urn:xmpp:mam:2#extended"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsForward  = "urn:xmpp:forward:0"
	nsSID      = "urn:xmpp:sid:0"
	nsXData    = "jabber:x:data"
	nsFulltext = "urn:xmpp:fulltext:0"
	nsReceipts = "urn:xmpp:receipts"
	nsMarkers  = "urn:xmpp:chat-markers:0"
	nsHints    = "urn:xmpp:hints"
	nsCarbons  = "urn:xmpp:carbons:2"
	nsChatStat = "http://jabber.org/protocol/chatstates"

	mamDefaultMax = 50
	mamMaxMax     = 250
	fulltextField = "{" + nsFulltext + "}fulltext"
)

// archivable reports whether a message goes into the history: chat and
// normal messages with a body. Chat states, receipts and markers alone are
// routed, not archived.
func archivable(el *Element, typ string) bool {
	switch typ {
	case "", "normal", "chat":
		return el.Child(nsClient, "body") != nil
	}
	return false
}

// clientID is the sender's id for a message: its XEP-0359 origin-id, or
// the id attribute.
func clientID(el *Element) string {
	if o := el.Child(nsSID, "origin-id"); o != nil && o.Get("id") != "" {
		return o.Get("id")
	}
	return el.Get("id")
}

// stripStanzaIDs removes stanza-id elements a client put in: only the
// server that archived a message may claim an id for it (XEP-0359 §5).
func stripStanzaIDs(el *Element) {
	for _, n := range el.Children {
		if n.El != nil && n.El.Space == nsSID && n.El.Local == "stanza-id" {
			el.RemoveChildren(nsSID, "stanza-id")
			return
		}
	}
}

func stanzaID(id string, by jid.JID) *Element {
	return NewElement(nsSID, "stanza-id", "id", id, "by", by.String())
}

// withStanzaID returns a copy of el carrying the archive id for the
// archive of by.
func withStanzaID(el *Element, id string, by jid.JID) *Element {
	c := el.ShallowCopy()
	c.Children = append(append([]Node(nil), el.Children...), Node{El: stanzaID(id, by)})
	return c
}

// withStanzaIDWire returns what withStanzaID(el, id, by).Bytes(nsClient)
// would, from data, el.Bytes(nsClient), which the archive needed anyway:
// the stanza-id (written as Element.write writes stanzaID's element)
// spliced in before the end tag. nil when data has no end tag to splice
// at (a message with no children).
func withStanzaIDWire(data []byte, id, by string) []byte {
	const end = "</message>"
	if !bytes.HasSuffix(data, []byte(end)) {
		return nil
	}
	var b bytes.Buffer
	b.Grow(len(data) + len(id) + len(by) + 64)
	b.Write(data[:len(data)-len(end)])
	b.WriteString(`<stanza-id xmlns="` + nsSID + `" id="`)
	escapeAttr(&b, id)
	b.WriteString(`" by="`)
	escapeAttr(&b, by)
	b.WriteString(`"/>` + end)
	return b.Bytes()
}

// recordStates stores receipts and chat markers with the message they
// refer to, in both participants' archives.
func (srv *Server) recordStates(from, to jid.JID, el *Element) {
	type mark struct {
		id    string
		state uint8
	}
	var marks []mark
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsReceipts && c.Local == "received":
			marks = append(marks, mark{c.Get("id"), chat.StateReceived})
		case c.Space == nsMarkers && c.Local == "received":
			marks = append(marks, mark{c.Get("id"), chat.StateReceived})
		case c.Space == nsMarkers && c.Local == "displayed":
			marks = append(marks, mark{c.Get("id"), chat.StateDisplayed})
		case c.Space == nsMarkers && c.Local == "acknowledged":
			marks = append(marks, mark{c.Get("id"), chat.StateAcked})
		}
	}
	for _, m := range marks {
		if m.id == "" {
			continue
		}
		// Bookkeeping, not delivery: done off the session's path, and
		// dropped (with a log line) rather than waited for under overload.
		update := func() {
			// The marked message was sent by 'to' to 'from'.
			for _, pair := range [][2]jid.JID{{to, from}, {from, to}} {
				if err := srv.cfg.Chat.MarkState(srv.ctx, pair[0], pair[1], m.id, m.state); err != nil {
					srv.log.Error("recording a receipt", "owner", pair[0].String(), "err", err)
				}
			}
		}
		select {
		case srv.states <- update:
		default:
			srv.log.Warn("too many receipts waiting; one is not recorded", "from", from.String())
		}
	}
}

// mamIQ answers XEP-0313 queries on the user's own archive.
func (srv *Server) mamIQ(s *Session, el, p *Element) {
	switch {
	case p.Local == "prefs":
		// History is always kept: the preference reads, and stays, always.
		s.send(iqResult(el, NewElement(nsMAM, "prefs", "default", "always").Add(
			NewElement(nsMAM, "always"), NewElement(nsMAM, "never"))).Bytes(nsClient))
	case p.Local == "query" && el.Get("type") == "get":
		form := NewElement(nsXData, "x", "type", "form")
		form.Add(NewElement(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").Add(NewElement(nsXData, "value").AddText(nsMAM)))
		for _, f := range []struct{ v, t string }{{"with", "jid-single"}, {"start", "text-single"}, {"end", "text-single"},
			{"before-id", "text-single"}, {"after-id", "text-single"}, {fulltextField, "text-single"}} {
			form.Add(NewElement(nsXData, "field", "var", f.v, "type", f.t))
		}
		s.send(iqResult(el, NewElement(nsMAM, "query").Add(form)).Bytes(nsClient))
	case p.Local == "query":
		srv.mamQuery(s, el, p)
	default:
		s.send(errorReply(el, "service-unavailable", "unknown MAM request"))
	}
}

// parseArchiveQuery reads the XEP-0313 form and the XEP-0059 set of a
// MAM query. with is the raw 'with' field, for the caller to judge (a user
// archive filters by it, a room's refuses it). A non-empty cond is the
// stanza error to answer, with text.
func parseArchiveQuery(p *Element) (q storage.ArchiveQuery, with, cond, text string) {
	if x := p.Child(nsXData, "x"); x != nil {
		for _, f := range x.Elements() {
			if f.Local != "field" {
				continue
			}
			v := strings.TrimSpace(f.ChildText(nsXData, "value"))
			if v == "" {
				continue
			}
			var err error
			switch f.Get("var") {
			case "FORM_TYPE":
				if v != nsMAM {
					return q, "", "bad-request", "FORM_TYPE must be " + nsMAM
				}
			case "with":
				with = v
			case "start":
				if q.Start, err = time.Parse(time.RFC3339Nano, v); err != nil {
					return q, "", "bad-request", "start must be an XEP-0082 date-time"
				}
			case "end":
				if q.End, err = time.Parse(time.RFC3339Nano, v); err != nil {
					return q, "", "bad-request", "end must be an XEP-0082 date-time"
				}
			case "after-id":
				q.AfterID = v
			case "before-id":
				q.BeforeID = v
			case fulltextField, "fulltext", "search":
				q.Text = v
			default:
				return q, "", "bad-request", "unsupported filter " + strconv.Quote(f.Get("var"))
			}
		}
	}
	q.Max = mamDefaultMax
	if set := p.Child(nsRSM, "set"); set != nil {
		if m := set.Child(nsRSM, "max"); m != nil {
			n, err := strconv.Atoi(strings.TrimSpace(m.Text()))
			if err != nil || n < 0 {
				return q, "", "bad-request", "RSM max must be a non-negative number"
			}
			q.Max = min(n, mamMaxMax)
		}
		if a := set.Child(nsRSM, "after"); a != nil && a.Text() != "" {
			q.AfterID = a.Text()
		}
		if b := set.Child(nsRSM, "before"); b != nil {
			q.Last = true
			if b.Text() != "" {
				q.BeforeID = b.Text()
			}
		}
	}
	return q, with, "", ""
}

func (srv *Server) mamQuery(s *Session, el, p *Element) {
	q, with, cond, text := parseArchiveQuery(p)
	if cond != "" {
		s.send(errorReply(el, cond, text))
		return
	}
	if with != "" {
		w, err := jid.Parse(with)
		if err != nil {
			s.send(errorReply(el, "jid-malformed", "with: "+err.Error()))
			return
		}
		q.With = w.Bare().String()
	}
	if q.Max == 0 {
		// RSM max=0 asks for the count only; there is none to give but
		// "complete" and no items.
		s.send(iqResult(el, NewElement(nsMAM, "fin", "complete", "false").Add(NewElement(nsRSM, "set"))).Bytes(nsClient))
		return
	}
	msgs, complete, err := srv.cfg.Chat.Query(s.ctx(), s.bare, q)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			s.send(errorReply(el, "item-not-found", "no message with that id in your archive"))
			return
		}
		srv.log.Error("MAM query", "user", s.bare.String(), "err", err)
		s.send(errorReply(el, "internal-server-error", "the archive could not be read; try again"))
		return
	}
	qid := p.Get("queryid")
	for _, m := range msgs {
		orig, err := parseElement(m.Data)
		if err != nil {
			srv.log.Error("archived message does not parse", "user", s.bare.String(), "id", m.ID, "err", err)
			continue
		}
		res := NewElement(nsMAM, "result", "id", m.ID)
		if qid != "" {
			res.Set("queryid", qid)
		}
		res.Add(NewElement(nsForward, "forwarded").Add(
			NewElement(nsDelay, "delay", "stamp", m.Stamp.UTC().Format("2006-01-02T15:04:05.000000Z")),
			orig))
		wrapper := NewElement(nsClient, "message", "to", s.full.String(), "from", s.bare.String()).Add(res)
		if !s.sendWait(wrapper.Bytes(nsClient)) {
			return
		}
	}
	fin := NewElement(nsMAM, "fin")
	if complete {
		fin.Set("complete", "true")
	}
	set := NewElement(nsRSM, "set")
	if len(msgs) > 0 {
		set.Add(NewElement(nsRSM, "first").AddText(msgs[0].ID), NewElement(nsRSM, "last").AddText(msgs[len(msgs)-1].ID))
	}
	s.sendWait(iqResult(el, fin.Add(set)).Bytes(nsClient))
}
