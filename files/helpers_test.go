package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/jid"
)

var (
	alice = jid.MustParse("alice@example.com/laptop")
	bob   = jid.MustParse("bob@example.com/phone")
	carol = jid.MustParse("carol@example.com")
)

// clock is a settable Config.Clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a Service mounted, without StripPrefix, at /parley/files on a
// test HTTP server.
type env struct {
	t     testing.TB
	svc   *Service
	srv   *httptest.Server
	clock *clock
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := newClock()
	if cfg.Dir == "" && cfg.Store == nil {
		cfg.Dir = t.TempDir()
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = srv.URL + "/parley/files"
	}
	if cfg.Clock == nil {
		cfg.Clock = c.Now
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	mux.Handle("/parley/files/", svc.Handler())
	return &env{t: t, svc: svc, srv: srv, clock: c}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// put PUTs body to the slot's URL with the given Content-Type ("" for
// none) and returns the status.
func (e *env) put(s Slot, contentType string, body []byte) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, s.PutURL, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// upload gets a slot and PUTs data into it, failing the test unless both
// work; it returns the slot.
func (e *env) upload(owner jid.JID, name, contentType string, data []byte) Slot {
	e.t.Helper()
	s, err := e.svc.Slot(context.Background(), owner, name, int64(len(data)), contentType)
	if err != nil {
		e.t.Fatalf("Slot(%q): %v", name, err)
	}
	if code := e.put(s, contentType, data); code != http.StatusCreated {
		e.t.Fatalf("PUT %q: status %d, want 201", name, code)
	}
	return s
}

// get fetches url and returns the response with its body read.
func (e *env) get(url string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body
}

// failingReader yields n bytes of zeros, then fails.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
