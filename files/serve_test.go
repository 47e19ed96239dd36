package files

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

const svgWithScript = `<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)"><script>alert(1)</script><circle r="5"/></svg>`

const svgNoDecl = `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`

const htmlPage = `<!DOCTYPE html><html><body><script>fetch('/steal?c='+document.cookie)</script></body></html>`

// assertAttachment checks the headers of a file that must never render.
func assertAttachment(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	h := resp.Header
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: status %d", what, resp.StatusCode)
	}
	if ct := h.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if cd := h.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("%s: Content-Disposition %q", what, cd)
	}
	assertFileSecurity(t, resp, what)
	if csp := h.Get("Content-Security-Policy"); csp != "sandbox; default-src 'none'" {
		t.Errorf("%s: CSP %q", what, csp)
	}
}

func assertFileSecurity(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	h := resp.Header
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: no nosniff", what)
	}
	if h.Get("Cross-Origin-Resource-Policy") != "same-site" {
		t.Errorf("%s: CORP %q", what, h.Get("Cross-Origin-Resource-Policy"))
	}
	if h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("%s: Referrer-Policy %q", what, h.Get("Referrer-Policy"))
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("%s: CSP %q", what, csp)
	}
	if resp.Header.Get("Content-Type") != "application/pdf" && !strings.HasPrefix(csp, "sandbox") {
		t.Errorf("%s: CSP %q not sandboxed", what, csp)
	}
}

func TestScriptableFilesAreAttachments(t *testing.T) {
	e := newEnv(t, Config{Blacklist: []string{}}) // serving is tested here, not refusing
	for _, tc := range []struct{ name, ct, body string }{
		{"drawing.svg", "image/svg+xml", svgWithScript},
		{"drawing.svg", "", svgNoDecl},
		{"icon.png", "image/png", htmlPage},           // HTML disguised as PNG
		{"icon.png", "image/png", svgNoDecl},          // SVG disguised as PNG
		{"page.html", "text/html", htmlPage},          // declared honestly
		{"notes.txt", "text/plain", htmlPage},         // HTML declared as text
		{"notes.txt", "text/plain", "  " + svgNoDecl}, // markup the sniffer calls text
		{"app.js", "text/javascript", "alert(1)"},     // script is text to the sniffer
		{"app.txt", "application/javascript", "alert(1)"},
		{"style.css", "", "body{background:url(x)}"},
		{"data.xml", "application/xml", "<?xml version='1.0'?><a/>"},
		{"page.xhtml", "application/xhtml+xml", "<html xmlns='http://www.w3.org/1999/xhtml'/>"},
		{"movie.mp4", "video/mp4", htmlPage}, // HTML declared as media
		{"x.bin", "", "\x00\x01\x02binary"},
	} {
		s := e.upload(alice, tc.name, tc.ct, []byte(tc.body))
		resp, body := e.get(s.GetURL)
		assertAttachment(t, resp, tc.name+" "+tc.ct)
		if string(body) != tc.body {
			t.Errorf("%s: body changed", tc.name)
		}
	}
}

func tinyPNG(t testing.TB, w, h int, alpha bool) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			a := uint8(255)
			if alpha && x < w/2 {
				a = 0
			}
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 128, a})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestInlineTypes(t *testing.T) {
	e := newEnv(t, Config{})
	pdf := "%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
	mp3 := "ID3\x03\x00\x00\x00\x00\x00\x00" + strings.Repeat("\xff\xfb\x90\x00", 64)
	for _, tc := range []struct {
		name, declared, body string
		wantType, wantCSP    string
	}{
		{"p.png", "image/png", string(tinyPNG(t, 4, 4, false)), "image/png", cspImage},
		{"p.dat", "application/zip", string(tinyPNG(t, 4, 4, false)), "image/png", cspImage}, // bytes win
		{"doc.pdf", "application/pdf", pdf, "application/pdf", cspPDF},
		{"song.mp3", "audio/mpeg", mp3, "audio/mpeg", cspMedia},
		{"song.opus", "audio/opus", "\x12\x34 unrecognised audio bytes \x00", "audio/opus", cspMedia},
		{"notes.txt", "text/plain", "plain notes, <b> later", "text/plain; charset=utf-8", cspFile},
		{"data.json", "application/json", `{"a": 1}`, "text/plain; charset=utf-8", cspFile},
	} {
		s := e.upload(alice, tc.name, tc.declared, []byte(tc.body))
		resp, body := e.get(s.GetURL)
		if ct := resp.Header.Get("Content-Type"); ct != tc.wantType {
			t.Errorf("%s: Content-Type %q, want %q", tc.name, ct, tc.wantType)
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline") {
			t.Errorf("%s: Content-Disposition %q", tc.name, cd)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != tc.wantCSP {
			t.Errorf("%s: CSP %q, want %q", tc.name, csp, tc.wantCSP)
		}
		assertFileSecurity(t, resp, tc.name)
		if string(body) != tc.body {
			t.Errorf("%s: body changed", tc.name)
		}
		// ?download=1 always downloads
		resp, _ = e.get(s.GetURL + "?download=1")
		if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
			t.Errorf("%s?download=1: Content-Disposition %q", tc.name, cd)
		}
	}
}

func TestContentDispositionName(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.upload(alice, "Übersicht \"Q1\"; x.txt", "", []byte("x"))
	resp, _ := e.get(s.GetURL)
	cd := resp.Header.Get("Content-Disposition")
	if !strings.Contains(cd, "filename*=utf-8''%C3%9Cbersicht%20_Q1_%3B%20x.txt") {
		t.Errorf("Content-Disposition = %q", cd)
	}
}

func TestRange(t *testing.T) {
	e := newEnv(t, Config{})
	data := randomBytes(t, 100_000)
	s := e.upload(alice, "r.bin", "", data)

	resp, body := e.get(s.GetURL, "Range", "bytes=1000-1999")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[1000:2000]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 1000-1999/100000" {
		t.Errorf("Content-Range = %q", cr)
	}
	assertAttachment(t, &http.Response{StatusCode: 200, Header: resp.Header}, "range")

	resp, body = e.get(s.GetURL, "Range", "bytes=-10")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[len(data)-10:]) {
		t.Errorf("suffix range: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, _ = e.get(s.GetURL, "Range", "bytes=200000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: %d", resp.StatusCode)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("error response without nosniff")
	}
	etag := `"` + mustFile(t, e, s.FileID).SHA256 + `"`
	resp, _ = e.get(s.GetURL, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	resp, body = e.get(s.GetURL, "Range", "bytes=0-9", "If-Range", `"stale"`)
	if resp.StatusCode != http.StatusOK || len(body) != len(data) {
		t.Errorf("If-Range with a stale ETag: %d, %d bytes", resp.StatusCode, len(body))
	}
	// HEAD has the headers and no body
	req, _ := http.NewRequest(http.MethodHead, s.GetURL, nil)
	hr, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 || hr.ContentLength != int64(len(data)) || hr.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD: %d, length %d, Accept-Ranges %q", hr.StatusCode, hr.ContentLength, hr.Header.Get("Accept-Ranges"))
	}
}

func TestPreviewPages(t *testing.T) {
	e := newEnv(t, Config{})
	pdf := "%PDF-1.4\n%%EOF\n"
	mp4 := "\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + strings.Repeat("\x00", 32)
	mp3 := "ID3\x03\x00\x00\x00\x00\x00\x00" + strings.Repeat("\xff\xfb\x90\x00", 16)
	for _, tc := range []struct {
		name, ct, body string
		want           []string // substrings of the page
		not            []string
	}{
		{"cat.png", "image/png", string(tinyPNG(t, 2, 2, false)), []string{`<img src="/parley/files/file/`, `/cat.png"`}, nil},
		{"doc.pdf", "application/pdf", pdf, []string{`<iframe src="/parley/files/file/`}, nil},
		{"clip.mp4", "video/mp4", mp4, []string{`<video controls`}, nil},
		{"song.mp3", "audio/mpeg", mp3, []string{`<audio controls`}, nil},
		{"notes.txt", "text/plain", "a < b & c", []string{`<pre>a &lt; b &amp; c</pre>`}, nil},
		{"evil.html", "text/html", htmlPage, []string{`<pre>&lt;!DOCTYPE html&gt;&lt;html&gt;&lt;body&gt;&lt;script&gt;`}, []string{"<script>"}},
		{"evil.svg", "image/svg+xml", svgWithScript, []string{`&lt;svg xmlns=`}, []string{"<svg", "<script>"}},
		{"x.zip", "application/zip", "PK\x03\x04\x00\x00binary\x00", []string{"There is no preview"}, []string{"<pre>"}},
		{"x' onmouseover='alert(1)&.txt", "", "hi", []string{"<h1>x&#39; onmouseover=&#39;alert(1)&amp;.txt</h1>"}, []string{"x' onmouseover"}},
	} {
		s := e.upload(alice, tc.name, tc.ct, []byte(tc.body))
		resp, body := e.get(e.svc.URLs(mustFile(t, e, s.FileID)).Preview)
		page := string(body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%s: %d %q", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: page CSP %q", tc.name, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(page, w) {
				t.Errorf("%s: page lacks %q:\n%s", tc.name, w, page)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(page, n) {
				t.Errorf("%s: page contains %q", tc.name, n)
			}
		}
		if !strings.Contains(page, `?download=1"`) {
			t.Errorf("%s: no download link", tc.name)
		}
		// the one inline style is exactly what the CSP hash allows
		m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(page)
		if m == nil || !strings.Contains(csp, "'sha256-"+cspHash(m[1])+"'") {
			t.Errorf("%s: style not covered by the CSP hash", tc.name)
		}
	}
}

func TestPreviewTextTruncated(t *testing.T) {
	e := newEnv(t, Config{})
	// 'é' is 2 bytes; an odd offset cuts one in half at 256 KiB
	text := "x" + strings.Repeat("é", 200_000)
	s := e.upload(alice, "long.txt", "text/plain", []byte(text))
	_, body := e.get(e.srv.URL + "/parley/files/preview/" + s.FileID)
	page := string(body)
	if !strings.Contains(page, "Only the first 256 KiB") || strings.Contains(page, "\uFFFD") {
		t.Fatalf("truncation note missing or a cut character shown")
	}
	pre := page[strings.Index(page, "<pre>")+5 : strings.Index(page, "</pre>")]
	if len(pre) > previewTextMax || len(pre) < previewTextMax-4 {
		t.Errorf("pre has %d bytes", len(pre))
	}
}

func TestClassifyTable(t *testing.T) {
	for _, tc := range []struct {
		declared, name, head string
		want                 kind
	}{
		{"image/png", "a.png", "\x89PNG\r\n\x1a\n", kindImage},
		{"image/png", "a.png", "<html>", kindOther},
		{"image/gif", "a.gif", "GIF89a", kindImage},
		{"image/svg+xml", "a.svg", "<svg/>", kindOther},
		{"", "a.txt", "hello", kindText},
		{"", "a.svg", "hello", kindOther},
		{"text/html", "a.txt", "hello", kindOther},
		{"", "a.txt", "\ufeff  <svg>", kindOther},
		{"application/pdf", "a.pdf", "%PDF-1.5", kindPDF},
		{"application/pdf", "a.pdf", "not a pdf \x00\x01", kindOther},
		{"video/webm", "a.webm", "\x1a\x45\xdf\xa3", kindVideo},
		{"audio/ogg", "a.ogg", "OggS\x00", kindAudio},
		{"video/ogg", "a.ogv", "OggS\x00", kindVideo},
		{"audio/flac", "a.flac", "fLaC\x00\x00\x00\x22\x10", kindAudio},
		{"audio/flac", "a.flac", "<html><script>", kindOther},
	} {
		if got := classify(tc.declared, tc.name, []byte(tc.head)).kind; got != tc.want {
			t.Errorf("classify(%q, %q, %q) = %v, want %v", tc.declared, tc.name, tc.head, got, tc.want)
		}
	}
}

func mustFile(t testing.TB, e *env, id string) File {
	t.Helper()
	f, err := e.svc.File(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
