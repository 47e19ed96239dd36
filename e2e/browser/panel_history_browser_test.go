//go:build browser

package browser

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPanelHistory runs panel_history.mjs: past chat sessions and
// meetings from the chat panel. The host runs with -session-gap 2s, so
// that three real chat sessions (messages sent through the server, a few
// seconds of quiet between them) are grouped as the default 30 minutes
// would group a day's chats. Alice (desktop) lists her sessions with Bob,
// opens one (in the panel and in a new window), and starts a meeting from
// Actions (…); Bob (phone width) sees the link and opens the join page.
func TestPanelHistory(t *testing.T) {
	h := startHistoryHost(t, "-session-gap", "2s")
	h.run(t, "panel_history.mjs")
}

// startHistoryHost builds and starts the example host like
// startPanelHost, without the slixmpp peer, with extra flags.
func startHistoryHost(t *testing.T, extra ...string) *panelHost {
	t.Helper()
	h := &panelHost{chromium: os.Getenv("CHROMIUM"), python: os.Getenv("E2E_PYTHON"), log: new(lockedBuffer)}
	if h.chromium == "" {
		h.chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(h.chromium)
	need(t, err == nil, h.chromium+" is missing: apt-get install -y chromium")
	h.node, err = exec.LookPath("node")
	need(t, err == nil, "node is missing: apt-get install -y nodejs npm")
	_, err = os.Stat(filepath.Join("node_modules", "playwright-core", "package.json"))
	need(t, err == nil, "playwright-core is missing: (cd e2e/browser && npm ci)")

	dir := t.TempDir()
	bin := filepath.Join(dir, "parley-host")
	build := exec.Command("go", "build", "-o", bin, "./examples/host")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example host: %v\n%s", err, out)
	}
	h.users = filepath.Join(dir, "users.json")
	writeUsers(t, h.users)
	addrs := freePorts(t, 3)
	h.xmpp, h.https = addrs[0], addrs[2]
	args := append([]string{"-domain", domain, "-data", filepath.Join(dir, "data"), "-users", h.users,
		"-xmpp-addr", addrs[0], "-xmpps-addr", addrs[1], "-http-addr", addrs[2], "-log-level", "debug",
		"-domain-roster=true"}, extra...)
	host := exec.Command(bin, args...)
	host.Stdout, host.Stderr = h.log, h.log
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- host.Wait() }()
	t.Cleanup(func() {
		host.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			host.Process.Kill()
			<-exited
		}
		for _, bad := range []string{"panic:", "WARNING: DATA RACE", "fatal error:"} {
			if strings.Contains(h.log.String(), bad) {
				t.Errorf("the host's log contains %q", bad)
			}
		}
		if t.Failed() {
			t.Logf("---- host log ----\n%s---- end of host log ----", h.log)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", h.https, time.Second)
		if err == nil {
			c.Close()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host is not listening on %s: %v", h.https, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
