package xmppsrv

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// errorTypes maps each stanza error condition to its type (RFC 6120 8.3.3).
var errorTypes = map[string]string{
	"bad-request":             "modify",
	"conflict":                "cancel",
	"feature-not-implemented": "cancel",
	"forbidden":               "auth",
	"gone":                    "cancel",
	"internal-server-error":   "cancel",
	"item-not-found":          "cancel",
	"jid-malformed":           "modify",
	"not-acceptable":          "modify",
	"not-allowed":             "cancel",
	"not-authorized":          "auth",
	"policy-violation":        "modify",
	"recipient-unavailable":   "wait",
	"redirect":                "modify",
	"remote-server-not-found": "cancel",
	"remote-server-timeout":   "wait",
	"resource-constraint":     "wait",
	"service-unavailable":     "cancel",
	"subscription-required":   "auth",
	"undefined-condition":     "cancel",
	"unexpected-request":      "wait",
}

// stanzaError builds the <error/> element for a condition.
func stanzaError(cond, text string) *Element {
	typ := errorTypes[cond]
	if typ == "" {
		typ = "cancel"
	}
	e := NewElement(nsClient, "error", "type", typ)
	e.Add(NewElement(nsStanzas, cond))
	if text != "" {
		t := NewElement(nsStanzas, "text")
		t.Attr = append(t.Attr, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: "en"})
		e.Add(t.AddText(text))
	}
	return e
}

// errorReply returns the error stanza answering el: addresses swapped, the
// original payload kept (so a client can tell which message failed), and
// the error appended.
func errorReply(el *Element, cond, text string) []byte {
	return errorElement(el, cond, text).Bytes(nsClient)
}

func errorElement(el *Element, cond, text string) *Element {
	r := &Element{Space: nsClient, Local: el.Local}
	if id := el.Get("id"); id != "" {
		r.Set("id", id)
	}
	r.Set("type", "error")
	r.Set("from", el.Get("to"))
	r.Set("to", el.Get("from"))
	if el.Local != "iq" || el.Get("type") == "get" || el.Get("type") == "set" {
		for _, n := range el.Children {
			if n.El != nil && n.El.Local == "error" && n.El.Space == nsClient {
				continue
			}
			r.Children = append(r.Children, n)
		}
	}
	return r.Add(stanzaError(cond, text))
}

// iqResult returns an empty result for an iq get or set.
func iqResult(el *Element, payload *Element) *Element {
	r := NewElement(nsClient, "iq", "type", "result", "id", el.Get("id"))
	r.Set("from", el.Get("to"))
	r.Set("to", el.Get("from"))
	if payload != nil {
		r.Add(payload)
	}
	return r
}

// withTo returns stanza b (which has no 'to') addressed to to, without
// reparsing it: broadcast presence is serialised once and stamped per
// recipient.
func withTo(b []byte, to string) []byte {
	i := bytes.IndexByte(b, ' ')
	j := bytes.IndexAny(b, "/>")
	if i < 0 || (j >= 0 && j < i) {
		i = j
	}
	if i < 0 {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(to) + 6)
	out.Write(b[:i])
	out.WriteString(` to="`)
	escapeAttr(&out, to)
	out.WriteByte('"')
	out.Write(b[i:])
	return out.Bytes()
}

// parseElement parses one element from bytes (a stored vCard, an archived
// stanza). Stanzas are stored as written to a client stream, without
// their namespace: jabber:client is the default.
func parseElement(b []byte) (*Element, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.DefaultSpace = nsClient
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if t, ok := tok.(xml.StartElement); ok {
			return readElement(d, t)
		}
	}
}

func boolAttr(v string) bool {
	v = strings.TrimSpace(v)
	return v == "true" || v == "1"
}
