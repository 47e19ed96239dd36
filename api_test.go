package parley_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/storage"
)

// TestConversationsAPIPaging walks /api/conversations page by page with
// the next cursor: every session once, newest first, and bad paging
// parameters refused.
func TestConversationsAPIPaging(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@example.com", "Alice", "pw", true)
	d.AddUser("bob@example.com", "Bob", "pw", true)
	s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: sessionAuth{d}, AllowUnencrypted: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	// Five sessions of two messages, two hours apart (the default gap is
	// shorter).
	base := time.Now().Add(-24 * time.Hour)
	for i := range 5 {
		for j := range 2 {
			m := storage.ArchivedMessage{Owner: "alice@example.com", With: "bob@example.com", ID: s.Chat().NewID(),
				Stamp: base.Add(time.Duration(i)*2*time.Hour + time.Duration(j)*time.Minute), Body: fmt.Sprintf("session %d line %d", i, j), Data: []byte("<message/>")}
			if err := s.Chat().Archive(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	type page struct {
		Conversations []struct {
			Messages int
			Preview  string
		}
		Next  string
		Error string
	}
	get := func(method, user string, q url.Values) (int, page) {
		req := httptest.NewRequest(method, "/api/conversations?"+q.Encode(), nil)
		if user != "" {
			req.Header.Set("X-Test-User", user)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		var p page
		json.Unmarshal(rec.Body.Bytes(), &p)
		return rec.Code, p
	}
	var got []string
	before := ""
	for n := 0; ; n++ {
		if n > 5 {
			t.Fatalf("paging does not end: %v", got)
		}
		code, p := get("GET", "alice@example.com", url.Values{"with": {"bob@example.com"}, "limit": {"2"}, "before": {before}})
		if code != 200 {
			t.Fatalf("page %d: %d %s", n, code, p.Error)
		}
		if len(p.Conversations) > 2 {
			t.Fatalf("page %d has %d sessions, limit 2", n, len(p.Conversations))
		}
		for _, c := range p.Conversations {
			if c.Messages != 2 {
				t.Errorf("session %q has %d messages", c.Preview, c.Messages)
			}
			got = append(got, c.Preview)
		}
		if p.Next == "" {
			break
		}
		before = p.Next
	}
	want := []string{"session 4 line 0", "session 3 line 0", "session 2 line 0", "session 1 line 0", "session 0 line 0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sessions over the pages: %q, want %q", got, want)
	}
	// Without limit: the default page holds all five, and no next.
	if code, p := get("GET", "alice@example.com", url.Values{"with": {"bob@example.com"}}); code != 200 || len(p.Conversations) != 5 || p.Next != "" {
		t.Errorf("default page: %d %+v", code, p)
	}
	for _, q := range []url.Values{
		{"with": {"bob@example.com"}, "limit": {"0"}},
		{"with": {"bob@example.com"}, "limit": {"101"}},
		{"with": {"bob@example.com"}, "limit": {"ten"}},
		{"with": {"bob@example.com"}, "before": {"no-such-id"}},
		{"with": {"bob"}},
	} {
		if code, p := get("GET", "alice@example.com", q); code != http.StatusBadRequest || p.Error == "" {
			t.Errorf("%v: %d %+v", q, code, p)
		}
	}
	if code, _ := get("GET", "", url.Values{"with": {"bob@example.com"}}); code != http.StatusUnauthorized {
		t.Errorf("no session: %d", code)
	}
	if code, _ := get("POST", "alice@example.com", url.Values{"with": {"bob@example.com"}}); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", code)
	}
	// Bob's archive is his own: alice's cursor is not his.
	if code, p := get("GET", "bob@example.com", url.Values{"with": {"alice@example.com"}, "before": {before}}); code != http.StatusBadRequest {
		t.Errorf("alice's cursor in bob's archive: %d %+v", code, p)
	}
}
