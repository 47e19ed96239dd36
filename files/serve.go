package files

import (
	"bytes"
	"mime"
	"net/http"
	"path"
	"strings"
)

// kind is how a file can be shown in a browser.
type kind int

const (
	kindOther kind = iota // downloaded only
	kindImage
	kindPDF
	kindAudio
	kindVideo
	kindText
)

func (k kind) String() string {
	return [...]string{"other", "image", "pdf", "audio", "video", "text"}[k]
}

// policy is how one file is served, decided from its first bytes first
// and its declared type and name second.
type policy struct {
	kind        kind   // how it is shown inline; kindOther: never inline
	contentType string // the Content-Type sent
	csp         string // the Content-Security-Policy sent
	// textual: the bytes are text; the preview page shows them, escaped,
	// even when the file itself is only ever downloaded (HTML, SVG, JS).
	textual bool
}

// sniffLen is how much of a file classify looks at, as net/http does.
const sniffLen = 512

// Content-Security-Policy values of file responses. Everything inline is
// sandboxed (no script, no same-origin access even if a browser were
// tricked into rendering markup) and may load nothing but, for images and
// media, the file itself.
const (
	cspFile  = "sandbox; default-src 'none'"
	cspImage = cspFile + "; img-src 'self'"
	cspMedia = cspFile + "; media-src 'self'"
	// PDFs are the one exception to the sandbox: Chromium refuses to start
	// its PDF viewer in a CSP-sandboxed document (crbug.com/271452 and its
	// successors), and the viewer is an <embed> that needs object-src and
	// inline style in its synthetic page. PDF script runs inside the
	// viewer (PDFium, pdf.js), never in the page's origin, and nothing
	// else may be loaded or framed.
	cspPDF = "default-src 'none'; object-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
)

// inlineImages are the image types served inline when the bytes say so.
// SVG is absent on purpose: it is XML that can carry script.
var inlineImages = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"image/bmp": true,
}

// sniffedMedia are the audio and video types net/http recognises.
var sniffedMedia = map[string]bool{
	"audio/mpeg": true, "audio/wave": true, "audio/aiff": true, "audio/basic": true,
	"audio/midi": true, "application/ogg": true, "video/avi": true, "video/mp4": true,
	"video/webm": true,
}

// declaredMedia are the audio and video types served inline on the
// uploader's word when the bytes are not recognised but also not anything
// a browser could execute (MP3 without ID3, AAC, FLAC, Opus have no magic
// net/http knows).
var declaredMedia = map[string]bool{
	"audio/mpeg": true, "audio/mp4": true, "audio/aac": true, "audio/flac": true,
	"audio/x-flac": true, "audio/ogg": true, "audio/opus": true, "audio/webm": true,
	"audio/wav": true, "audio/x-wav": true, "audio/wave": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
}

// scriptable reports whether a declared media type is one a browser may
// run script from or apply as code: markup, XML (SVG among it), script,
// style sheets. Such files are never served inline, whatever the bytes
// look like.
func scriptable(mt string) bool {
	switch mt {
	case "text/html", "application/xhtml+xml", "text/xml", "application/xml",
		"text/javascript", "application/javascript", "application/x-javascript",
		"application/ecmascript", "text/ecmascript", "text/css", "image/svg+xml",
		"application/x-shockwave-flash", "text/xsl", "application/xslt+xml",
		"message/rfc822", "multipart/related", "application/x-mimearchive":
		return true
	}
	return strings.HasSuffix(mt, "+xml")
}

// scriptableExts are extensions browsers or desktops treat as markup or
// script when a file is opened, whatever its Content-Type said.
var scriptableExts = map[string]bool{
	".html": true, ".htm": true, ".xhtml": true, ".xht": true, ".shtml": true,
	".svg": true, ".svgz": true, ".xml": true, ".xsl": true, ".xslt": true,
	".js": true, ".mjs": true, ".cjs": true, ".css": true, ".swf": true,
	".hta": true, ".mht": true, ".mhtml": true,
}

// classify decides how to serve a file from its declared media type, its
// name and its first bytes. The bytes win: a file is shown inline only
// when they are recognisably a harmless type, and then it is served with
// the type they show, not the declared one.
func classify(declared, name string, head []byte) policy {
	if len(head) > sniffLen {
		head = head[:sniffLen]
	}
	declared = baseType(declared)
	sniffed := http.DetectContentType(head)
	sniffedBase := baseType(sniffed)
	p := policy{kind: kindOther, contentType: "application/octet-stream", csp: cspFile}
	p.textual = strings.HasPrefix(sniffedBase, "text/")
	ext := strings.ToLower(path.Ext(name))

	switch {
	case inlineImages[sniffedBase]:
		p.kind, p.contentType, p.csp = kindImage, sniffedBase, cspImage
	case sniffedBase == "application/pdf":
		p.kind, p.contentType, p.csp = kindPDF, sniffedBase, cspPDF
	case sniffedMedia[sniffedBase] || (sniffedBase == "application/octet-stream" && declaredMedia[declared]):
		ct := sniffedBase
		if declaredMedia[declared] {
			ct = declared // same family of bytes; the uploader knows audio/mp4 from video/mp4
		} else if ct == "application/ogg" {
			ct = "audio/ogg"
		}
		p.kind, p.contentType, p.csp = kindVideo, ct, cspMedia
		if strings.HasPrefix(ct, "audio/") {
			p.kind = kindAudio
		}
	case sniffedBase == "text/plain" && !scriptable(declared) && !scriptableExts[ext] && !looksLikeMarkup(head):
		p.kind, p.contentType, p.csp = kindText, sniffed, cspFile
	}
	return p
}

// looksLikeMarkup reports whether text starts, after white space and a
// byte-order mark, with '<': SVG without an XML declaration and HTML
// fragments the sniffer does not know still count as markup.
func looksLikeMarkup(head []byte) bool {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n\f")
	return len(head) > 0 && head[0] == '<'
}

// baseType returns the lower-case media type without parameters, "" if
// mt does not parse.
func baseType(mt string) string {
	if mt == "" {
		return ""
	}
	t, _, err := mime.ParseMediaType(mt)
	if err != nil {
		return ""
	}
	return t
}

// setFileHeaders sets the headers every file response carries.
func setFileHeaders(h http.Header, p policy, name string, download bool) {
	disposition := "inline"
	if p.kind == kindOther || download {
		disposition = "attachment"
	}
	if p.kind == kindOther {
		p.contentType, p.csp = "application/octet-stream", cspFile
	}
	h.Set("Content-Type", p.contentType)
	h.Set("Content-Disposition", contentDisposition(disposition, name))
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "same-site")
	h.Set("Referrer-Policy", "no-referrer")
}

// contentDisposition formats the header with the name in RFC 6266 form
// (filename*=UTF-8”... for names that are not plain ASCII).
func contentDisposition(disposition, name string) string {
	if v := mime.FormatMediaType(disposition, map[string]string{"filename": name}); v != "" {
		return v
	}
	return disposition
}
