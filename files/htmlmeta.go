package files

import (
	"bytes"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// pageMeta is what a link card needs from a page, as raw bytes in the
// page's encoding.
type pageMeta struct {
	title    []byte
	hasTitle bool
	meta     map[string][]byte // property or name, lower case -> content; first wins
	charset  string            // from <meta charset> or http-equiv
}

// rawTextElements hold text that is not markup until their end tag: a
// "<meta" inside a script string must not count.
var rawTextElements = map[string]bool{
	"script": true, "style": true, "textarea": true, "xmp": true, "iframe": true,
	"noembed": true, "noframes": true, "template": true, "plaintext": true,
}

// scanHTML is a small, tolerant scanner of the parts of an HTML page a
// link card uses: <meta> tags (property or name, content, charset,
// http-equiv) and the first <title> outside SVG. It follows the HTML
// tokenizer where it matters: comments, doctype and processing
// instructions are skipped, raw-text elements (script, style, ...) are
// skipped to their end tag, attributes may come in any order, quoted with
// " or ' or unquoted, and the first of duplicate attributes wins. It never
// fails: broken markup gives fewer fields, not an error. Its work is
// linear in len(data).
func scanHTML(data []byte) pageMeta {
	m := pageMeta{meta: make(map[string][]byte)}
	svgDepth := 0
	i := 0
	for i < len(data) {
		lt := bytes.IndexByte(data[i:], '<')
		if lt < 0 {
			break
		}
		i += lt
		rest := data[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return m
			}
			i += 4 + end + 3
		case bytes.HasPrefix(rest, []byte("<!")), bytes.HasPrefix(rest, []byte("<?")):
			end := bytes.IndexByte(rest, '>')
			if end < 0 {
				return m
			}
			i += end + 1
		case bytes.HasPrefix(rest, []byte("</")) && len(rest) > 2 && isASCIILetter(rest[2]):
			name, _, _, n := parseTag(rest[1:])
			if name == "svg" && svgDepth > 0 {
				svgDepth--
			}
			i += 1 + n
		case len(rest) > 1 && isASCIILetter(rest[1]):
			name, attrs, selfClosing, n := parseTag(rest)
			i += n
			switch {
			case name == "meta":
				m.addMeta(attrs)
			case name == "svg" && !selfClosing:
				svgDepth++
			case name == "title" && svgDepth == 0:
				text, n := rawText(data[i:], "title")
				i += n
				if !m.hasTitle {
					m.title, m.hasTitle = text, true
				}
			case rawTextElements[name]:
				_, n := rawText(data[i:], name)
				i += n
			}
		default:
			i++
		}
	}
	return m
}

type attr struct {
	name  string
	value []byte
}

// parseTag parses a start tag at the beginning of b (b[0] == '<') and
// returns its lower-case name, its attributes (lower-case names, first of
// duplicates kept), whether it ended in "/>", and the bytes consumed. An
// unterminated tag consumes everything.
func parseTag(b []byte) (name string, attrs []attr, selfClosing bool, n int) {
	j := 1
	for j < len(b) && !isTagSpace(b[j]) && b[j] != '/' && b[j] != '>' {
		j++
	}
	name = strings.ToLower(string(b[1:j]))
	for j < len(b) {
		for j < len(b) && (isTagSpace(b[j]) || b[j] == '/') {
			selfClosing = b[j] == '/'
			j++
		}
		if j >= len(b) {
			break
		}
		if b[j] == '>' {
			return name, attrs, selfClosing, j + 1
		}
		selfClosing = false
		start := j
		j++ // the first character may be '=' (HTML allows it as part of the name)
		for j < len(b) && !isTagSpace(b[j]) && b[j] != '/' && b[j] != '>' && b[j] != '=' {
			j++
		}
		an := strings.ToLower(string(b[start:j]))
		for j < len(b) && isTagSpace(b[j]) {
			j++
		}
		var val []byte
		if j < len(b) && b[j] == '=' {
			j++
			for j < len(b) && isTagSpace(b[j]) {
				j++
			}
			if j < len(b) && (b[j] == '"' || b[j] == '\'') {
				q := b[j]
				end := bytes.IndexByte(b[j+1:], q)
				if end < 0 {
					return name, attrs, false, len(b)
				}
				val = b[j+1 : j+1+end]
				j += end + 2
			} else {
				vs := j
				for j < len(b) && !isTagSpace(b[j]) && b[j] != '>' {
					j++
				}
				val = b[vs:j]
			}
		}
		if !hasAttr(attrs, an) {
			attrs = append(attrs, attr{an, val})
		}
	}
	return name, attrs, selfClosing, len(b)
}

func hasAttr(attrs []attr, name string) bool {
	for _, a := range attrs {
		if a.name == name {
			return true
		}
	}
	return false
}

func attrValue(attrs []attr, name string) ([]byte, bool) {
	for _, a := range attrs {
		if a.name == name {
			return a.value, true
		}
	}
	return nil, false
}

// rawText returns the text up to the end tag of element name (matched
// case-insensitively) and the bytes consumed, end tag included.
func rawText(b []byte, name string) ([]byte, int) {
	for i := 0; i < len(b); {
		lt := bytes.Index(b[i:], []byte("</"))
		if lt < 0 {
			break
		}
		i += lt
		tail := b[i+2:]
		if len(tail) >= len(name) && strings.EqualFold(string(tail[:len(name)]), name) &&
			(len(tail) == len(name) || isTagSpace(tail[len(name)]) || tail[len(name)] == '>' || tail[len(name)] == '/') {
			end := bytes.IndexByte(tail, '>')
			if end < 0 {
				return b[:i], len(b)
			}
			return b[:i], i + 2 + end + 1
		}
		i += 2
	}
	return b, len(b)
}

func (m *pageMeta) addMeta(attrs []attr) {
	if cs, ok := attrValue(attrs, "charset"); ok && m.charset == "" {
		m.charset = strings.TrimSpace(string(cs))
	}
	if he, ok := attrValue(attrs, "http-equiv"); ok && strings.EqualFold(strings.TrimSpace(string(he)), "content-type") && m.charset == "" {
		if c, ok := attrValue(attrs, "content"); ok {
			m.charset = charsetParam(string(c))
		}
	}
	content, ok := attrValue(attrs, "content")
	if !ok {
		return
	}
	for _, key := range []string{"property", "name", "itemprop"} {
		k, ok := attrValue(attrs, key)
		if !ok {
			continue
		}
		ks := strings.ToLower(strings.TrimSpace(string(k)))
		if _, seen := m.meta[ks]; ks != "" && !seen {
			m.meta[ks] = content
		}
	}
}

// charsetParam extracts charset=... from a Content-Type value.
func charsetParam(ct string) string {
	i := strings.Index(strings.ToLower(ct), "charset=")
	if i < 0 {
		return ""
	}
	v := ct[i+len("charset="):]
	if j := strings.IndexAny(v, "; \t"); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"'`)
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isTagSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// decoder turns raw attribute or title bytes into clean text: decoded
// from the page's charset, entities resolved, white space collapsed,
// control characters dropped, cut to max runes.
type textDecoder struct {
	charset string // "" or utf-8 means UTF-8
}

func (d textDecoder) text(raw []byte, max int) string {
	s := ""
	if enc, err := htmlindex.Get(d.charset); err == nil && d.charset != "" && !strings.EqualFold(d.charset, "utf-8") {
		if out, err := enc.NewDecoder().Bytes(raw); err == nil {
			s = string(out)
		}
	}
	if s == "" {
		s = strings.ToValidUTF8(string(raw), "\uFFFD")
	}
	s = html.UnescapeString(s)
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || isBidiControl(r) {
			continue
		}
		if n >= max {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// first returns the first present, non-empty meta value among keys.
func (m *pageMeta) first(d textDecoder, max int, keys ...string) string {
	for _, k := range keys {
		if v, ok := m.meta[k]; ok {
			if s := d.text(v, max); s != "" {
				return s
			}
		}
	}
	return ""
}

// validUTF8Len cuts s to at most n bytes at a character boundary.
func validUTF8Len(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
