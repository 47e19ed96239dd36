package files

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// previewTextMax is how much of a text file the preview page shows.
const previewTextMax = 256 << 10

// previewCSS is the page's only style; the CSP allows exactly it by hash,
// so no injected style (let alone script) could apply.
const previewCSS = `body{margin:0;font:15px/1.4 system-ui,sans-serif;color:#222;background:#f4f4f5}` +
	`header{padding:12px 20px;background:#fff;border-bottom:1px solid #ddd}` +
	`h1{font-size:17px;margin:0 0 4px;overflow-wrap:anywhere}` +
	`header p{margin:0;color:#555}main{padding:20px;text-align:center}` +
	`img,video{max-width:100%;max-height:80vh;background:#fff}audio{width:100%;max-width:600px}` +
	`iframe{width:100%;height:80vh;border:0;background:#fff}` +
	`pre{text-align:left;white-space:pre-wrap;overflow-wrap:anywhere;background:#fff;padding:12px;border:1px solid #ddd;margin:0}` +
	`.note{color:#555}`

var previewCSP = "default-src 'none'; img-src 'self'; media-src 'self'; frame-src 'self'; " +
	"style-src 'sha256-" + cspHash(previewCSS) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// previewPage is parsed once; html/template escapes every value for its
// context (text, attribute, URL).
var previewPage = template.Must(template.New("preview").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Name}}</title>
<style>` + previewCSS + `</style>
</head>
<body>
<header>
<h1>{{.Name}}</h1>
<p>{{.Size}} · {{.Type}} · <a href="{{.Download}}" download="{{.Name}}">Download</a></p>
</header>
<main>
{{- if eq .Kind "image"}}
<img src="{{.Src}}" alt="{{.Name}}">
{{- else if eq .Kind "pdf"}}
<iframe src="{{.Src}}" title="{{.Name}}"></iframe>
{{- else if eq .Kind "audio"}}
<audio controls preload="metadata" src="{{.Src}}"></audio>
{{- else if eq .Kind "video"}}
<video controls preload="metadata" src="{{.Src}}"></video>
{{- else if .Text}}
<pre>{{.Text}}</pre>
{{- if .Truncated}}
<p class="note">Only the first 256 KiB are shown.</p>
{{- end}}
{{- else}}
<p class="note">There is no preview for this kind of file. Download it to open it.</p>
{{- end}}
</main>
</body>
</html>
`))

type previewData struct {
	Name, Type, Size string
	Kind             string
	Src, Download    string
	Text             string
	Truncated        bool
}

// servePreview shows a file in a page of its own: images, PDFs, audio and
// video through the file URL (served with their own CSP), text as escaped
// source (HTML, SVG and script files included, as text: their markup is
// shown, never run), anything else as a download link.
func (s *Service) servePreview(w http.ResponseWriter, r *http.Request) {
	f, rc, head, ok := s.openFile(w, r)
	if !ok {
		return
	}
	defer rc.Close()
	p := classify(f.ContentType, f.Name, head)
	src := s.basePath + "/file/" + f.ID + "/" + url.PathEscape(f.Name)
	d := previewData{
		Name:     f.Name,
		Type:     f.ContentType,
		Size:     humanSize(f.Size),
		Kind:     p.kind.String(),
		Src:      src,
		Download: src + "?download=1",
	}
	if p.kind == kindText || (p.kind == kindOther && p.textual) {
		d.Kind = "text"
		buf, err := io.ReadAll(io.LimitReader(rc, previewTextMax+1))
		if err != nil {
			s.log.Error("files: reading for preview", "id", f.ID, "err", err)
			http.Error(w, "could not read the file", http.StatusInternalServerError)
			return
		}
		if len(buf) > previewTextMax {
			buf, d.Truncated = buf[:previewTextMax], true
		}
		d.Text = textOf(buf, d.Truncated)
		if d.Text == "" && len(buf) > 0 {
			d.Kind = "other" // binary after all
		}
	}
	var out bytes.Buffer
	if err := previewPage.Execute(&out, d); err != nil {
		s.log.Error("files: preview page", "id", f.ID, "err", err)
		http.Error(w, "could not render the preview", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", previewCSP)
	h.Set("Cross-Origin-Resource-Policy", "same-site")
	h.Set("Cache-Control", "private, no-cache")
	w.Write(out.Bytes())
}

// textOf returns buf as text for display, "" when it is not text (NUL
// bytes, or more than a tenth invalid UTF-8). A character cut in half by
// the size limit (truncated) is dropped; other invalid bytes are replaced.
func textOf(buf []byte, truncated bool) string {
	if bytes.IndexByte(buf, 0) >= 0 {
		return ""
	}
	if truncated {
		for k := 1; k <= utf8.UTFMax-1 && k <= len(buf); k++ {
			if utf8.RuneStart(buf[len(buf)-k]) {
				if !utf8.FullRune(buf[len(buf)-k:]) {
					buf = buf[:len(buf)-k]
				}
				break
			}
		}
	}
	if !utf8.Valid(buf) {
		bad := 0
		for i := 0; i < len(buf); {
			r, size := utf8.DecodeRune(buf[i:])
			if r == utf8.RuneError && size == 1 {
				bad++
			}
			i += size
		}
		if bad*10 > len(buf) {
			return ""
		}
	}
	return strings.ToValidUTF8(string(buf), "\uFFFD")
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
