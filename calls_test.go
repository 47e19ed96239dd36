package parley_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/jid"
)

// TestCallFromChat: a call started under the webmail session is the
// caller's meeting, named with the host directory's names, with a link
// under PublicURL; without a session there is no call.
func TestCallFromChat(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@example.com", "Alice Liddell", "pw", true)
	d.AddUser("bob@example.com", "Bob Builder", "pw", true)
	s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: sessionAuth{d}, AllowUnencrypted: true,
		DataDir: t.TempDir(), PublicURL: "https://mail.example.com/parley", DisableMedia: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	start := func(user, body string, contentType ...string) (int, map[string]any) {
		req := httptest.NewRequest("POST", "/meetings/api/start", strings.NewReader(body))
		req.Header.Set("Content-Type", append(contentType, "application/json")[0])
		if user != "" {
			req.Header.Set("X-Test-User", user)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		var out map[string]any
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	if code, _ := start("", `{"contact":"bob@example.com","call":"video"}`); code != http.StatusUnauthorized {
		t.Fatalf("without a webmail session: %d", code)
	}
	// A cross-site form cannot start one: only JSON, which needs CORS.
	if code, _ := start("alice@example.com", `{"contact":"bob@example.com","call":"video"}`, "text/plain"); code != http.StatusBadRequest {
		t.Fatalf("a text/plain POST: %d", code)
	}
	code, out := start("alice@example.com", `{"contact":"bob@example.com","call":"audio"}`)
	link, _ := out["link"].(string)
	if code != http.StatusCreated || !strings.HasPrefix(link, "https://mail.example.com/parley/meetings/j/") || !strings.HasSuffix(link, "?media=audio") ||
		out["message"] != "Alice Liddell started an audio call.\nJoin: "+link {
		t.Fatalf("audio call: %d %v", code, out)
	}
	m := out["meeting"].(map[string]any)
	if m["title"] != "Audio call: Alice Liddell and Bob Builder" {
		t.Errorf("title %v", m["title"])
	}
	mine, err := s.Meetings().Mine(context.Background(), jid.MustParse("alice@example.com"))
	if err != nil || len(mine) != 1 || mine[0].ID != m["id"] {
		t.Errorf("alice's meetings: %+v %v", mine, err)
	}
}
