package xmppsrv

import (
	"bytes"
	"testing"

	"github.com/parleyhq/parley/jid"
)

// TestWithStanzaIDWire: the delivered message spliced from the archived
// bytes is byte for byte the serialisation of withStanzaID's copy.
func TestWithStanzaIDWire(t *testing.T) {
	for _, by := range []jid.JID{jid.MustParse("bob@example.test"), jid.MustParse("b\u00f6b@example.test/r<&>\"' x")} {
		wireCases(t, by)
	}
}

func wireCases(t *testing.T, by jid.JID) {
	for _, in := range []string{
		`<message xmlns='jabber:client' type='chat' to='bob@example.test' id='c1'><body>hi &amp; &lt;bye&gt; "q"</body></message>`,
		`<message xmlns='jabber:client' type='chat' to='bob@example.test'><body>x</body><active xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='jabber:x:oob' a:b='c' xmlns:a='urn:a'><url>u</url></x></message>`,
		`<message xmlns='jabber:client' to='bob@example.test'><body>a</body><message xmlns='urn:other'>n</message></message>`,
	} {
		el, err := parseElement([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		want := withStanzaID(el, "0123456789abcdef01234567", by).Bytes(nsClient)
		if got := withStanzaIDWire(el.Bytes(nsClient), "0123456789abcdef01234567", by.String()); !bytes.Equal(got, want) {
			t.Errorf("spliced\n%s\nwant\n%s", got, want)
		}
	}
	el, _ := parseElement([]byte(`<message xmlns='jabber:client' to='bob@example.test'/>`))
	if data := el.Bytes(nsClient); !bytes.HasSuffix(data, []byte("</message>")) {
		if got := withStanzaIDWire(data, "1", by.String()); got != nil {
			t.Errorf("spliced %s into a message with no end tag", got)
		}
	}
}
