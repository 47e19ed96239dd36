package xmppsrv

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
)

// Element is a parsed XML element of a stanza. Names carry their namespace
// URI, never a prefix; on output, namespaces are declared where they change,
// so a payload from one client reaches another intact whatever prefixes the
// sender used.
type Element struct {
	Space, Local string
	Attr         []xml.Attr // no namespace declarations
	Children     []Node
}

// Node is a child of an Element: an element or character data.
type Node struct {
	El   *Element
	Text string
}

const nsXML = "http://www.w3.org/XML/1998/namespace"

// NewElement returns an element with the given namespace and name, and
// attributes from alternating key, value pairs.
func NewElement(space, local string, kv ...string) *Element {
	e := &Element{Space: space, Local: local}
	for i := 0; i+1 < len(kv); i += 2 {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: kv[i]}, Value: kv[i+1]})
	}
	return e
}

// Get returns the value of an unqualified attribute, "" if absent.
func (e *Element) Get(name string) string {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// Has reports whether the unqualified attribute is present.
func (e *Element) Has(name string) bool {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return true
		}
	}
	return false
}

// Set sets an unqualified attribute; an empty value removes it.
func (e *Element) Set(name, value string) {
	for i, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: name}, Value: value})
	}
}

// Child returns the first child element with that namespace and local name.
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Children {
		if n.El != nil && n.El.Local == local && n.El.Space == space {
			return n.El
		}
	}
	return nil
}

// FirstChild returns the first child element, or nil.
func (e *Element) FirstChild() *Element {
	for _, n := range e.Children {
		if n.El != nil {
			return n.El
		}
	}
	return nil
}

// Elements returns the child elements.
func (e *Element) Elements() []*Element {
	var out []*Element
	for _, n := range e.Children {
		if n.El != nil {
			out = append(out, n.El)
		}
	}
	return out
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	var b strings.Builder
	for _, n := range e.Children {
		if n.El == nil {
			b.WriteString(n.Text)
		}
	}
	return b.String()
}

// ChildText returns the text of the first child with that name, "" if none.
func (e *Element) ChildText(space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text()
	}
	return ""
}

// Add appends child elements and returns e.
func (e *Element) Add(children ...*Element) *Element {
	for _, c := range children {
		e.Children = append(e.Children, Node{El: c})
	}
	return e
}

// AddText appends character data and returns e.
func (e *Element) AddText(s string) *Element {
	e.Children = append(e.Children, Node{Text: s})
	return e
}

// RemoveChildren drops every child element with that namespace and name.
func (e *Element) RemoveChildren(space, local string) {
	out := e.Children[:0]
	for _, n := range e.Children {
		if n.El != nil && n.El.Space == space && n.El.Local == local {
			continue
		}
		out = append(out, n)
	}
	e.Children = out
}

// Copy returns a deep copy of e.
func (e *Element) Copy() *Element {
	c := &Element{Space: e.Space, Local: e.Local}
	c.Attr = append([]xml.Attr(nil), e.Attr...)
	c.Children = make([]Node, len(e.Children))
	for i, n := range e.Children {
		if n.El != nil {
			c.Children[i] = Node{El: n.El.Copy()}
		} else {
			c.Children[i] = n
		}
	}
	return c
}

// ShallowCopy copies e's attributes but shares its children; for changing
// the to and from of a stanza that is forwarded unchanged otherwise.
func (e *Element) ShallowCopy() *Element {
	c := *e
	c.Attr = append([]xml.Attr(nil), e.Attr...)
	return &c
}

// Bytes serialises e as it appears inside a stream whose default namespace
// is parentNS.
func (e *Element) Bytes(parentNS string) []byte {
	var b bytes.Buffer
	e.write(&b, parentNS)
	return b.Bytes()
}

func (e *Element) write(b *bytes.Buffer, parentNS string) {
	b.WriteByte('<')
	b.WriteString(e.Local)
	if e.Space != parentNS {
		b.WriteString(` xmlns="`)
		escapeAttr(b, e.Space)
		b.WriteByte('"')
	}
	var prefixes []string // declared for qualified attributes
	for _, a := range e.Attr {
		b.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case nsXML, "xml":
			b.WriteString("xml:")
		default:
			p := "ns" + strconv.Itoa(len(prefixes))
			prefixes = append(prefixes, p)
			b.WriteString("xmlns:" + p + `="`)
			escapeAttr(b, a.Name.Space)
			b.WriteString(`" ` + p + ":")
		}
		b.WriteString(a.Name.Local)
		b.WriteString(`="`)
		escapeAttr(b, a.Value)
		b.WriteByte('"')
	}
	if len(e.Children) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, n := range e.Children {
		if n.El != nil {
			n.El.write(b, e.Space)
		} else {
			escapeText(b, n.Text)
		}
	}
	b.WriteString("</")
	b.WriteString(e.Local)
	b.WriteByte('>')
}

func escapeText(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '&':
			esc = "&amp;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

func escapeAttr(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '&':
			esc = "&amp;"
		case '"':
			esc = "&quot;"
		case '\'':
			esc = "&apos;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		case '\t':
			esc = "&#x9;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// AttrEscape returns s escaped for an attribute value.
func AttrEscape(s string) string {
	var b bytes.Buffer
	escapeAttr(&b, s)
	return b.String()
}

// readElement reads the rest of an element whose start tag was just
// returned by d, building the tree. The decoder has already checked
// well-formedness and resolved namespaces.
func readElement(d *xml.Decoder, start xml.StartElement) (*Element, error) {
	root := fromStart(start)
	stack := []*Element{root}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			el := fromStart(t)
			top.Children = append(top.Children, Node{El: el})
			stack = append(stack, el)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		case xml.CharData:
			top.Children = append(top.Children, Node{Text: string(t)})
		case xml.Comment:
			return nil, errRestricted("comments")
		case xml.ProcInst:
			return nil, errRestricted("processing instructions")
		case xml.Directive:
			return nil, errRestricted("DTDs and directives")
		}
	}
}

func fromStart(s xml.StartElement) *Element {
	el := &Element{Space: s.Name.Space, Local: s.Name.Local}
	for _, a := range s.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		el.Attr = append(el.Attr, a)
	}
	return el
}

type restrictedError string

func (e restrictedError) Error() string { return "XMPP forbids " + string(e) }

func errRestricted(what string) error { return restrictedError(what) }

// ReadElement reads the rest of the element whose start tag d just
// returned, for other stream readers of Parley (server-to-server). Like
// client streams, it refuses comments, processing instructions and
// directives.
func ReadElement(d *xml.Decoder, start xml.StartElement) (*Element, error) {
	return readElement(d, start)
}
