package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPanelHandlerServesModules(t *testing.T) {
	h := PanelHandler()
	for path, ctype := range map[string]string{
		"/parley-chat.js": "text/javascript; charset=utf-8",
		"/xmpp.js":        "text/javascript; charset=utf-8",
		"/linkify.js":     "text/javascript; charset=utf-8",
		"/panel.css":      "text/css; charset=utf-8",
		"/popout.html":    "text/html; charset=utf-8",
		"/popout.js":      "text/javascript; charset=utf-8",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		res := rec.Result()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %s", path, res.Status)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": PanelCSP,
			"X-Content-Type-Options":  "nosniff",
			"Cache-Control":           "no-cache",
		} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, k, got, want)
			}
		}
		if rec.Body.Len() == 0 {
			t.Errorf("GET %s: empty body", path)
		}

		// Revalidation with the ETag costs no body.
		etag := res.Header.Get("ETag")
		if !strings.HasPrefix(etag, `"`) {
			t.Fatalf("GET %s: ETag %q is not a strong validator", path, etag)
		}
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("If-None-Match", etag)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("GET %s with If-None-Match: %d, %d bytes; want 304 and none", path, rec.Code, rec.Body.Len())
		}
	}
}

func TestPanelHandlerRefuses(t *testing.T) {
	h := PanelHandler()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/README.md", 404}, // documentation is not served
		{"GET", "/", 404},
		{"GET", "/../panel.go", 404},
		{"GET", "/nope.js", 404},
		{"POST", "/parley-chat.js", 405},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.code)
		}
		if rec.Header().Get("Content-Security-Policy") != PanelCSP {
			t.Errorf("%s %s: no CSP on the error", tc.method, tc.path)
		}
	}
}

// The panel must never build messages from HTML: the modules may not use
// the sinks that parse markup, except the one static template.
func TestPanelHasNoHTMLSinks(t *testing.T) {
	mods, err := fs.Glob(panelFiles, "panel/*.js")
	if err != nil || len(mods) < 5 {
		t.Fatalf("panel modules: %v %v", mods, err)
	}
	for _, name := range mods {
		b, err := panelFiles.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		for _, sink := range []string{"outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment"} {
			if strings.Contains(src, sink) {
				t.Errorf("%s uses %s", name, sink)
			}
		}
		if n := strings.Count(src, "innerHTML"); n > 0 && !(name == "panel/parley-chat.js" && n == 1 && strings.Contains(src, "wrap.innerHTML = template;")) {
			t.Errorf("%s uses innerHTML %d times; only the static template may", name, n)
		}
	}
}
