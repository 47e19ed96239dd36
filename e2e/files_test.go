//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	_ "image/jpeg" // thumbnails may be JPEG
	"image/png"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/files"
)

// Issue 4, files in chat: slixmpp (e2e/slix/files.py, with its xep_0363
// plugin) uploads files to the example host and shares them in messages;
// the HTTP side (downloads, thumbnails, preview pages, how hostile files
// are served) is checked here with net/http, trusting the host's
// certificate rather than skipping verification.

func TestFiles(t *testing.T) {
	requireSlixmpp(t)
	t.Logf("client: %s via %s", slixInfo, python)

	// 1. alice discovers the service, uploads a random 3 MiB file and a
	// PNG, sends bob the links; bob gets XEP-0066 data and downloads
	// byte-identical files. Then the PNG's thumbnail and preview page.
	t.Run("ShareAndDownload", func(t *testing.T) {
		t.Parallel()
		h := startHost(t, true)
		dir := t.TempDir()
		bin := make([]byte, 3<<20)
		if _, err := rand.Read(bin); err != nil {
			t.Fatal(err)
		}
		binPath := writeTestFile(t, dir, "random.bin", bin)
		pngBytes, pw, ph := testPNG(t)
		pngPath := writeTestFile(t, dir, "photo.png", pngBytes)

		res := slixFiles(t, h, "share", binPath, pngPath)
		if len(res.Files) != 2 {
			t.Fatalf("script reported %d files, want 2: %+v", len(res.Files), res)
		}
		if want := "upload." + domain; res.Service != want {
			t.Errorf("upload service %q, want %q", res.Service, want)
		}
		if res.MaxFileSize <= 3<<20 {
			t.Errorf("max-file-size %d is not above the 3 MiB just uploaded", res.MaxFileSize)
		}
		c := hostClient(t, h)
		base := "https://" + h.https + "/parley/files"
		for i, want := range [][]byte{bin, pngBytes} {
			f := res.Files[i]
			if !strings.HasPrefix(f.URL, base+"/file/") {
				t.Errorf("%s: GET URL %s is not under %s/file/ (PublicURL of the example host + /files)", f.Name, f.URL, base)
			}
			if sum := sha256.Sum256(want); f.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: bob's download has sha256 %s, the file written has %s", f.Name, f.SHA256, hex.EncodeToString(sum[:]))
			}
		}

		// The PNG, again from here: inline, as an image, same bytes.
		p := res.Files[1]
		resp, body := httpGet(t, c, p.URL)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, pngBytes) {
			t.Errorf("GET %s: %s, %d bytes, byte-identical %t", p.URL, resp.Status, len(body), bytes.Equal(body, pngBytes))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "image/png" {
			t.Errorf("PNG served as Content-Type %q, want image/png", ct)
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline") {
			t.Errorf("PNG served with Content-Disposition %q, want inline", cd)
		}
		checkNosniff(t, p.URL, resp)

		id := fileID(t, p.URL)
		thumbURL := base + "/thumb/" + id
		resp, body = httpGet(t, c, thumbURL)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s: %.200q", thumbURL, resp.Status, body)
		} else {
			ct := resp.Header.Get("Content-Type")
			img, format, err := image.Decode(bytes.NewReader(body))
			switch {
			case !strings.HasPrefix(ct, "image/"):
				t.Errorf("thumbnail Content-Type %q, want image/*", ct)
			case err != nil:
				t.Errorf("thumbnail (%s, %d bytes) does not decode: %v", ct, len(body), err)
			default:
				b := img.Bounds()
				if b.Dx() > files.ThumbSize || b.Dy() > files.ThumbSize || b.Dx() < 1 || b.Dy() < 1 {
					t.Errorf("thumbnail is %dx%d, want within %dx%d", b.Dx(), b.Dy(), files.ThumbSize, files.ThumbSize)
				}
				t.Logf("thumbnail of the %dx%d PNG: %s %dx%d (%s, %d bytes)", pw, ph, format, b.Dx(), b.Dy(), ct, len(body))
			}
			checkNosniff(t, thumbURL, resp)
		}

		previewURL := base + "/preview/" + id
		resp, body = httpGet(t, c, previewURL)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %.200q", previewURL, resp.Status, body)
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/html" {
			t.Errorf("preview page Content-Type %q, want text/html", resp.Header.Get("Content-Type"))
		}
		if !bytes.Contains(body, []byte("<img")) || !bytes.Contains(body, []byte("/file/"+id+"/photo.png")) {
			t.Errorf("preview page of the PNG shows no <img> of /file/%s/photo.png:\n%s", id, body)
		}
		checkStrictPageCSP(t, previewURL, resp.Header.Get("Content-Security-Policy"))
		checkNosniff(t, previewURL, resp)
		t.Logf("preview page CSP: %s", resp.Header.Get("Content-Security-Policy"))
	})

	// 2. Slot requests refused over XMPP: one byte over max-file-size,
	// and .exe names.
	t.Run("SlotErrors", func(t *testing.T) {
		t.Parallel()
		h := startHost(t, true)
		slixFiles(t, h, "slot-errors")
	})

	// 3. Hostile uploads are served so that no browser runs them.
	t.Run("HostileServedSafely", func(t *testing.T) {
		t.Parallel()
		h := startHost(t, true)
		dir := t.TempDir()
		hostile := map[string][]byte{
			"evil.svg":  []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload=alert(1)><script>alert(document.domain)</script></svg>`),
			"page.html": []byte("<!doctype html><html><body><h1>hi</h1><script>fetch('/parley/api/files?with=bob@" + domain + "').then(r=>r.text()).then(alert)</script></body></html>\n"),
			// A "PNG" whose bytes are HTML: the bytes decide, not the name.
			"cat.png": []byte("<html><script>alert('not a cat')</script></html>\n"),
		}
		names := []string{"evil.svg", "page.html", "cat.png"}
		var paths []string
		for _, n := range names {
			paths = append(paths, writeTestFile(t, dir, n, hostile[n]))
		}
		res := slixFiles(t, h, "upload", paths...)
		if len(res.Files) != len(names) {
			t.Fatalf("script reported %d files, want %d: %+v", len(res.Files), len(names), res)
		}
		c := hostClient(t, h)
		for _, f := range res.Files {
			for _, u := range []string{f.URL, f.URL + "?download=1"} {
				resp, body := httpGet(t, c, u)
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, hostile[f.Name]) {
					t.Errorf("GET %s: %s, byte-identical %t", u, resp.Status, bytes.Equal(body, hostile[f.Name]))
				}
				checkServedSafely(t, u, resp)
				if u == f.URL {
					t.Logf("%s: %s, Content-Type %s, Content-Disposition %s, X-Content-Type-Options %s, CSP %q",
						f.Name, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"),
						resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("Content-Security-Policy"))
				}
			}
			// The preview page shows the markup as text, never as markup.
			id := fileID(t, f.URL)
			pu := "https://" + h.https + "/parley/files/preview/" + id
			resp, body := httpGet(t, c, pu)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s (%s): %s", pu, f.Name, resp.Status)
				continue
			}
			checkStrictPageCSP(t, pu, resp.Header.Get("Content-Security-Policy"))
			checkNosniff(t, pu, resp)
			// Its markup may show as escaped text (onload=alert(1) as
			// characters is harmless), but no tag of it may be in the page.
			low := bytes.ToLower(body)
			for _, bad := range []string{"<script", "<svg"} {
				if bytes.Contains(low, []byte(bad)) {
					t.Errorf("preview page of %s contains the tag %q unescaped:\n%s", f.Name, bad, body)
				}
			}
			if bytes.Contains(low, []byte("&lt;script&gt;")) {
				t.Logf("preview page of %s shows the markup as escaped text", f.Name)
			} else {
				t.Logf("preview page of %s shows no text of it", f.Name)
			}
		}
	})
}

// filesResult is the RESULT line of e2e/slix/files.py.
type filesResult struct {
	Service     string `json:"service"`
	MaxFileSize int64  `json:"max_file_size"`
	Files       []struct {
		Name   string `json:"name"`
		URL    string `json:"url"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"files"`
}

// hostCert is the example host's self-signed certificate, made in its data
// directory at start.
func hostCert(t *testing.T, h *host) string {
	t.Helper()
	p := filepath.Join(h.data, "cert.pem")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the host's certificate: %v", err)
	}
	return p
}

// slixFiles runs one scenario of e2e/slix/files.py against h and returns
// its RESULT line, if it printed one.
func slixFiles(t *testing.T, h *host, scenario string, args ...string) filesResult {
	t.Helper()
	const limit = 30 * time.Second
	ca := hostCert(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), limit+10*time.Second)
	defer cancel()
	argv := append([]string{
		filepath.Join(moduleRoot, "e2e", "slix", "files.py"),
		"--addr", h.xmpp, "--tls-addr", h.xmpps, "--users", h.users, "--domain", domain,
		"--timeout", "30",
		scenario, ca,
	}, args...)
	cmd := exec.CommandContext(ctx, python, argv...)
	// slixmpp's xep_0363 upload_file makes its own aiohttp session, with
	// the default SSL context: SSL_CERT_FILE makes that context trust the
	// host's certificate, so the PUT is verified, not unverified.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("slixmpp files scenario %q killed after %s\n%s", scenario, limit+10*time.Second, out)
	}
	if err != nil {
		t.Fatalf("slixmpp files scenario %q failed: %v\n%s", scenario, err, out)
	}
	var res filesResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var log []string
	for sc.Scan() {
		if j, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			if err := json.Unmarshal([]byte(j), &res); err != nil {
				t.Fatalf("bad RESULT line from %q: %v\n%s", scenario, err, out)
			}
			continue
		}
		log = append(log, sc.Text())
	}
	t.Logf("%s", strings.Join(log, "\n"))
	return res
}

// hostClient is an HTTP client that trusts the host's certificate.
func hostClient(t *testing.T, h *host) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(hostCert(t, h))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in the host's cert.pem")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport: tr,
		Timeout:   15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // what is served at the URL itself
		},
	}
}

func httpGet(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", u, err)
	}
	return resp, body
}

// fileID is the ID in a download link .../file/<id>/<name>.
func fileID(t *testing.T, u string) string {
	t.Helper()
	_, rest, ok := strings.Cut(u, "/file/")
	id, _, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || id == "" {
		t.Fatalf("no file ID in %s", u)
	}
	return id
}

func writeTestFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testPNG is a 640x400 opaque gradient, larger than a thumbnail.
func testPNG(t *testing.T) ([]byte, int, int) {
	t.Helper()
	const w, h = 640, 400
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) % 256), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w, h
}

func checkNosniff(t *testing.T, u string, resp *http.Response) {
	t.Helper()
	if v := resp.Header.Get("X-Content-Type-Options"); !strings.EqualFold(v, "nosniff") {
		t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", u, v)
	}
}

// cspDirectives splits a Content-Security-Policy into directive -> value.
func cspDirectives(csp string) map[string]string {
	d := map[string]string{}
	for _, part := range strings.Split(csp, ";") {
		f := strings.Fields(part)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		if _, dup := d[name]; !dup { // the first one counts
			d[name] = strings.Join(f[1:], " ")
		}
	}
	return d
}

// checkServedSafely: a hostile file comes as a download that no browser
// renders or runs in the site's origin.
func checkServedSafely(t *testing.T, u string, resp *http.Response) {
	t.Helper()
	cd := resp.Header.Get("Content-Disposition")
	if disp, _, err := mime.ParseMediaType(cd); err != nil || disp != "attachment" {
		t.Errorf("GET %s: Content-Disposition %q, want attachment", u, cd)
	}
	checkNosniff(t, u, resp)
	csp := resp.Header.Get("Content-Security-Policy")
	d := cspDirectives(csp)
	if _, ok := d["sandbox"]; !ok {
		t.Errorf("GET %s: Content-Security-Policy %q has no sandbox directive", u, csp)
	} else if strings.Contains(d["sandbox"], "allow-scripts") || strings.Contains(d["sandbox"], "allow-same-origin") {
		t.Errorf("GET %s: CSP sandbox %q allows scripts or the site's origin", u, d["sandbox"])
	}
	if d["default-src"] != "'none'" {
		t.Errorf("GET %s: CSP default-src %q, want 'none' (policy %q)", u, d["default-src"], csp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" || mt == "image/svg+xml" ||
		strings.Contains(mt, "xml") || strings.Contains(mt, "script") {
		t.Errorf("GET %s: served as Content-Type %q, a type browsers render", u, resp.Header.Get("Content-Type"))
	}
}

// checkStrictPageCSP: a page of our own (the preview) may load nothing but
// the file from its own origin and its one hashed style: no script at all,
// no inline anything, no plugins, not framed by other sites.
func checkStrictPageCSP(t *testing.T, u, csp string) {
	t.Helper()
	if csp == "" {
		t.Errorf("GET %s: no Content-Security-Policy", u)
		return
	}
	d := cspDirectives(csp)
	if d["default-src"] != "'none'" {
		t.Errorf("GET %s: CSP default-src %q, want 'none' (policy %q)", u, d["default-src"], csp)
	}
	for _, name := range []string{"script-src", "script-src-elem", "script-src-attr", "object-src", "connect-src"} {
		if v, ok := d[name]; ok && v != "'none'" {
			t.Errorf("GET %s: CSP %s %q; want none (policy %q)", u, name, v, csp)
		}
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} {
		for name, v := range d {
			for _, src := range strings.Fields(v) {
				if src == bad {
					t.Errorf("GET %s: CSP %s allows %s (policy %q)", u, name, bad, csp)
				}
			}
		}
	}
	if d["base-uri"] != "'none'" {
		t.Errorf("GET %s: CSP base-uri %q, want 'none' (policy %q)", u, d["base-uri"], csp)
	}
	if fa, ok := d["frame-ancestors"]; !ok || (fa != "'none'" && fa != "'self'") {
		t.Errorf("GET %s: CSP frame-ancestors %q, want 'none' or 'self' (policy %q)", u, fa, csp)
	}
}
