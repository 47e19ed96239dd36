package meeting

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage/memstore"
)

var (
	alice = jid.MustParse("alice@example.com") // organizer
	bob   = jid.MustParse("bob@example.com")
	carol = jid.MustParse("carol@example.com")
)

func ptr[T any](v T) *T { return &v }

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	waiting chan struct{} // signalled on each After
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, waiting: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	}
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- w.at
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// Set moves the clock to t (forwards).
func (c *fakeClock) Set(t time.Time) { c.Advance(t.Sub(c.Now())) }

// epoch is a Monday, 09:00 UTC, in winter (before the EU DST change).
var epoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type env struct {
	t     *testing.T
	svc   *Service
	store *memstore.Store
	clock *fakeClock
	files *MemFiles
	srv   *httptest.Server
}

func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, store: memstore.New(), clock: newFakeClock(epoch), files: new(MemFiles)}
	cfg := Config{
		Store: e.store, Files: e.files, Clock: e.clock,
		Identify: func(r *http.Request) (jid.JID, bool) {
			u := r.Header.Get("X-Test-User")
			if u == "" {
				return jid.JID{}, false
			}
			j, err := jid.Parse(u)
			return j, err == nil
		},
		CheckFileName: func(name string) error {
			if strings.HasSuffix(strings.ToLower(name), ".exe") {
				return errors.New("the .exe extension is blocked by the administrator")
			}
			return nil
		},
		MaxFileSize: 1 << 20,
	}
	for _, m := range mod {
		m(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	t.Cleanup(func() { svc.Close() })
	return e
}

var ctx = context.Background()

func (e *env) create(c Change) Meeting {
	e.t.Helper()
	if c.Title == nil {
		c.Title = ptr("Weekly sync")
	}
	m, err := e.svc.Create(ctx, alice, c)
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return m
}

func (e *env) join(m Meeting, req JoinRequest) Ticket {
	e.t.Helper()
	tk, err := e.svc.Join(ctx, m.Token, req)
	if err != nil {
		e.t.Fatalf("Join(%+v): %v", req, err)
	}
	return tk
}

// client is a participant connected through the service's connect (no
// network), reading its events.
type client struct {
	t    *testing.T
	c    *conn
	cred string
	svc  *Service
}

func (e *env) connect(tk Ticket) *client {
	e.t.Helper()
	c, err := e.svc.connect(tk.Credential)
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	cl := &client{t: e.t, c: c, cred: tk.Credential, svc: e.svc}
	e.t.Cleanup(func() { e.svc.disconnect(c) })
	return cl
}

// next returns the next event of type typ, skipping others.
func (c *client) next(typ EventType) Event {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-c.c.ch:
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			c.t.Fatalf("no %s event", typ)
		}
	}
}

// none checks that no event of type typ is queued.
func (c *client) none(typ EventType) {
	c.t.Helper()
	for {
		select {
		case ev := <-c.c.ch:
			if ev.Type == typ {
				c.t.Fatalf("unexpected %s event: %+v", typ, ev)
			}
		default:
			return
		}
	}
}

func (c *client) state() State {
	c.t.Helper()
	r, p, err := c.svc.participant(c.cred)
	if err != nil {
		c.t.Fatalf("participant: %v", err)
	}
	defer r.unlock()
	return p.State
}

// --- HTTP side ---

func (e *env) serve() string {
	if e.srv == nil {
		e.srv = httptest.NewServer(e.svc.Handler())
		e.t.Cleanup(e.srv.Close)
	}
	return e.srv.URL
}

type apiResp struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r apiResp) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		return e["code"].(string)
	}
	return ""
}

func (e *env) do(method, path, user string, body any, hdr ...string) apiResp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = strings.NewReader(string(b))
		}
	}
	req, _ := http.NewRequest(method, e.serve()+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apiResp{status: res.StatusCode, header: res.Header, raw: raw}
	json.Unmarshal(raw, &out.body)
	return out
}

// wsClient is a participant over the real WebSocket.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func (e *env) dialWS(cred string) *wsClient {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.serve(), "http") + "/meetings/api/ws"
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ws.CloseNow() })
	if err := wsjson.Write(ctx, ws, map[string]string{"type": "hello", "credential": cred}); err != nil {
		e.t.Fatal(err)
	}
	return &wsClient{t: e.t, ws: ws}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	if err := wsjson.Write(ctx, w.ws, v); err != nil {
		w.t.Fatal(err)
	}
}

// next reads messages until one of type typ arrives.
func (w *wsClient) next(typ string) map[string]any {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		var m map[string]any
		if err := wsjson.Read(ctx, w.ws, &m); err != nil {
			w.t.Fatalf("waiting for %q: %v", typ, err)
		}
		if m["type"] == typ {
			return m
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
