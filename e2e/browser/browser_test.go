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
// through the example host's toy webmail.
func TestPanel(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	python := os.Getenv("E2E_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}
	_, err := os.Stat(chromium)
	need(t, err == nil, chromium+" is missing: apt-get install -y chromium")
	node, err := exec.LookPath("node")
	need(t, err == nil, "node is missing: apt-get install -y nodejs npm")
	_, err = os.Stat(filepath.Join("node_modules", "playwright-core", "package.json"))
	need(t, err == nil, "playwright-core is missing: (cd e2e/browser && npm ci)")
	out, err := exec.Command(python, "-c", "import slixmpp").CombinedOutput()
	need(t, err == nil, fmt.Sprintf("%s cannot import slixmpp: apt-get install -y python3-slixmpp (%s)", python, bytes.TrimSpace(out)))

	dir := t.TempDir()
	bin := filepath.Join(dir, "parley-host")
	build := exec.Command("go", "build", "-o", bin, "./examples/host")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example host: %v\n%s", err, out)
	}

	usersFile := filepath.Join(dir, "users.json")
	writeUsers(t, usersFile)
	addrs := freePorts(t, 3)
	hostLog := new(lockedBuffer)
	host := exec.Command(bin, "-domain", domain, "-data", filepath.Join(dir, "data"), "-users", usersFile,
		"-xmpp-addr", addrs[0], "-xmpps-addr", addrs[1], "-http-addr", addrs[2], "-log-level", "debug")
	host.Stdout, host.Stderr = hostLog, hostLog
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
			if strings.Contains(hostLog.String(), bad) {
				t.Errorf("the host's log contains %q", bad)
			}
		}
		if t.Failed() {
			t.Logf("---- host log ----\n%s---- end of host log ----", hostLog)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addrs[2], time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host is not listening on %s: %v", addrs[2], err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	shots, _ := filepath.Abs("screenshots")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "panel.mjs")
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(),
		"PARLEY_URL=https://"+addrs[2],
		"PARLEY_XMPP="+addrs[0],
		"PARLEY_USERS="+usersFile,
		"PARLEY_DOMAIN="+domain,
		"PARLEY_SCREENSHOTS="+shots,
		"PARLEY_PYTHON="+python,
		"CHROMIUM="+chromium,
	)
	output := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = output, output
	start := time.Now()
	err = cmd.Run()
	t.Logf("panel.mjs (%s):\n%s", time.Since(start).Round(time.Millisecond), output)
	if ctx.Err() != nil {
		t.Fatal("panel.mjs did not finish within 4 minutes")
	}
	if err != nil {
		t.Fatalf("panel.mjs failed: %v", err)
	}
	if !strings.Contains(hostLog.String(), "stream resumed") {
		t.Errorf("the host never resumed a stream: the panel reconnected without XEP-0198 resumption")
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
