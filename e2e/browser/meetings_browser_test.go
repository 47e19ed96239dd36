//go:build browser

// Package browser drives Parley's web pages in a real browser: Debian's
// Chromium, steered by playwright-core from npm (never a downloaded
// browser). Run with
//
//	apt-get install -y chromium && (cd e2e/browser && npm install)
//	go test -tags browser -count=1 -v ./e2e/browser/
//
// Screenshots land in e2e/browser/screenshots/ (not committed).
package browser

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/meeting"
	"github.com/parleyhq/parley/storage/memstore"
)

const chromium = "/usr/bin/chromium"

// requireBrowser skips (or fails on CI) without Chromium, node, or the npm
// package, which it installs when npm is there.
func requireBrowser(t *testing.T) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing", what)
		}
		t.Skipf("%s is missing", what)
	}
	if _, err := os.Stat(chromium); err != nil {
		missing(chromium + " (apt-get install -y chromium)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node")
	}
	if _, err := os.Stat("node_modules/playwright-core"); err != nil {
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("npm install: %s", out)
			missing("playwright-core (npm install in e2e/browser)")
		}
	}
}

// TestMeetingInChromium: an organizer creates a meeting with a password
// and a lobby; a guest joins by link, waits in the lobby, is admitted;
// both chat; the guest's upload is refused under organizer-only uploads
// and accepted once the organizer changes the setting mid-meeting.
func TestMeetingInChromium(t *testing.T) {
	requireBrowser(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String() + "/parley"
	store := memstore.New()
	files, err := meeting.NewDirFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := meeting.New(meeting.Config{
		Store:    store,
		Files:    files,
		LinkBase: base + "/meetings/j/",
		// The host's webmail session, faked with a cookie.
		Identify: func(r *http.Request) (jid.JID, bool) {
			c, err := r.Cookie("e2e_user")
			if err != nil {
				return jid.JID{}, false
			}
			u, err := jid.Parse(c.Value)
			return u, err == nil
		},
		CheckFileName: func(name string) error {
			if strings.HasSuffix(strings.ToLower(name), ".exe") {
				return errors.New("the administrator blocks .exe files")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	mux := http.NewServeMux()
	mux.Handle("/parley/", http.StripPrefix("/parley", svc.Handler()))
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	shots, _ := filepath.Abs("screenshots")
	os.MkdirAll(shots, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "meetings.mjs")
	cmd.Env = append(os.Environ(), "BASE_URL="+base, "SCREENSHOTS="+shots, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("meetings.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("browser scenario failed: %v", err)
	}

	// What the browser did is on the server.
	alice := jid.MustParse("alice@example.com")
	ms, err := svc.Mine(ctx, alice)
	if err != nil || len(ms) != 1 {
		t.Fatalf("alice's meetings: %+v, %v", ms, err)
	}
	m := ms[0]
	if !m.HasPassword || !m.Lobby || !m.AllowGuests || m.Uploads != meeting.UploadsAnyone || m.Schedule == nil {
		t.Errorf("meeting settings: %+v", m)
	}
	msgs, err := svc.History(ctx, meeting.Access{User: alice}, m.ID, 0, 0)
	if err != nil || len(msgs) < 2 {
		t.Errorf("chat: %+v, %v", msgs, err)
	}
	fs, err := svc.Files(ctx, meeting.Access{User: alice}, m.ID)
	if err != nil || len(fs) != 1 || fs[0].Name != "notes.txt" || fs[0].UploaderName != "Grace Guest" {
		t.Errorf("files: %+v, %v", fs, err)
	}
}
