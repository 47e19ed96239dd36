//go:build browser

package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const domain = "example.test"

// lockedBuffer collects a process's output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// need fails the test, or skips it outside CI, when a tool is missing.
func need(t *testing.T, ok bool, msg string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// TestPanel runs panel.mjs: two browser users and a slixmpp client chat
// through the example host's toy webmail, with the domain roster.
func TestPanel(t *testing.T) {
	h := startPanelHost(t, true)
	h.run(t, "panel.mjs")
	if !strings.Contains(h.log.String(), "stream resumed") {
		t.Errorf("the host never resumed a stream: the panel reconnected without XEP-0198 resumption")
	}
}

// TestPanelInvitations runs panel-invite.mjs on a host without the domain
// roster: adding a contact, accepting and declining invitations.
func TestPanelInvitations(t *testing.T) {
	h := startPanelHost(t, false)
	h.run(t, "panel-invite.mjs")
}

type panelHost struct {
	node, python, chromium string
	https, xmpp, users     string
	log                    *lockedBuffer
}

// newPanelHost checks the tools a browser test needs (Chromium, node, the
// npm package pkg and, with slix, slixmpp for the Python peer) and says
// how to install what is missing.
func newPanelHost(t *testing.T, pkg string, slix bool) *panelHost {
	t.Helper()
	h := &panelHost{chromium: os.Getenv("CHROMIUM"), python: os.Getenv("E2E_PYTHON"), log: new(lockedBuffer)}
	if h.chromium == "" {
		h.chromium = "/usr/bin/chromium"
	}
	if h.python == "" {
		h.python = "/usr/bin/python3"
	}
	_, err := os.Stat(h.chromium)
	need(t, err == nil, h.chromium+" is missing: apt-get install -y chromium")
	h.node, err = exec.LookPath("node")
	need(t, err == nil, "node is missing: apt-get install -y nodejs npm")
	_, err = os.Stat(filepath.Join("node_modules", pkg, "package.json"))
	need(t, err == nil, pkg+" is missing: (cd e2e/browser && npm ci)")
	if slix {
		out, err := exec.Command(h.python, "-c", "import slixmpp").CombinedOutput()
		need(t, err == nil, fmt.Sprintf("%s cannot import slixmpp: apt-get install -y python3-slixmpp (%s)", h.python, bytes.TrimSpace(out)))
	}
	return h
}

// startPanelHost checks the tools, builds and starts the example host, and
// stops it when the test ends.
func startPanelHost(t *testing.T, domainRoster bool) *panelHost {
	t.Helper()
	h := newPanelHost(t, "playwright-core", true)
	return launchHost(t, h, fmt.Sprintf("-domain-roster=%t", domainRoster))
}

// launchHost builds the example host, starts it for h on free loopback
// ports with the test users and flags, stops it (SIGTERM) at cleanup,
// fails the test if its log shows a panic or a data race, and returns
// once its HTTPS port answers.
func launchHost(t *testing.T, h *panelHost, flags ...string) *panelHost {
	t.Helper()
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
		"-xmpp-addr", addrs[0], "-xmpps-addr", addrs[1], "-http-addr", addrs[2], "-log-level", "debug"}, flags...)
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

// run runs a scenario script with node and fails the test unless it passes.
func (h *panelHost) run(t *testing.T, script string) {
	t.Helper()
	shots, _ := filepath.Abs("screenshots")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.node, script)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(),
		"PARLEY_URL=https://"+h.https,
		"PARLEY_XMPP="+h.xmpp,
		"PARLEY_USERS="+h.users,
		"PARLEY_DOMAIN="+domain,
		"PARLEY_SCREENSHOTS="+shots,
		"PARLEY_PYTHON="+h.python,
		"CHROMIUM="+h.chromium,
	)
	output := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = output, output
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s (%s):\n%s", script, time.Since(start).Round(time.Millisecond), output)
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within 4 minutes", script)
	}
	if err != nil {
		t.Fatalf("%s failed: %v", script, err)
	}
}

func writeUsers(t *testing.T, path string) {
	t.Helper()
	type user struct {
		Address     string `json:"address"`
		Name        string `json:"name"`
		Password    string `json:"password"`
		ChatEnabled bool   `json:"chat_enabled"`
	}
	var users []user
	for _, u := range []struct{ local, name string }{
		{"alice", "Alice Liddell"}, {"bob", "Bob Builder"}, {"carol", "Carol Danvers"}, {"dave", "Dave Bowman"},
	} {
		users = append(users, user{Address: u.local + "@" + domain, Name: u.name, Password: u.local + "-Pa55word!", ChatEnabled: u.local != "dave"})
	}
	b, err := json.Marshal(map[string]any{
		"users":   users,
		"aliases": map[string][]string{"sales@" + domain: {"bob@" + domain, "carol@" + domain}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
