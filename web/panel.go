package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed panel
var panelFiles embed.FS

// PanelCSP is the Content-Security-Policy sent with every panel file. It
// governs the pop-out page (popout.html), which hosts the element on its
// own: scripts and styles only from the panel's origin, no inline code,
// connections only back to the same origin (the WebSocket endpoint), and no
// framing by other sites. Browsers ignore it on the scripts and styles
// themselves; the host page that loads them keeps its own policy.
const PanelCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; font-src 'self'; connect-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// panelTypes are the content types of the files the panel ships. Module
// scripts must carry a JavaScript type (browsers refuse anything else with
// nosniff), so the table does not depend on the system's MIME database.
var panelTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
}

type panelFile struct {
	body  []byte
	ctype string
	etag  string
}

// PanelHandler serves the chat panel's static files (parley-chat.js and
// the modules, styles and pop-out page it loads), to be mounted with its
// prefix stripped:
//
//	mux.Handle("/parley/panel/", http.StripPrefix("/parley/panel", web.PanelHandler()))
//
// Every response carries PanelCSP, nosniff and a strong ETag. The file
// names carry no version, so browsers revalidate on each load (Cache-Control:
// no-cache) and get 304 Not Modified while the files are unchanged: after
// an upgrade no browser runs a mix of old and new modules. Only GET and
// HEAD are served. The handler is safe for concurrent use; each call
// returns a new one.
func PanelHandler() http.Handler {
	files := make(map[string]panelFile)
	fs.WalkDir(panelFiles, "panel", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := panelTypes[path.Ext(p)]
		if !ok {
			return nil // documentation and anything else stay in the source tree
		}
		body, err := panelFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		files[strings.TrimPrefix(p, "panel")] = panelFile{
			body:  body,
			ctype: ctype,
			etag:  `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
		}
		return nil
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", PanelCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", f.ctype)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache")
		// ServeContent answers If-None-Match with 304 and handles ranges.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}
