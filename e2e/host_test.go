//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// The fixture every host starts with: three chat-enabled users, one who has
// never opened webmail (not chat-enabled), and an alias.
var (
	passwords = map[string]string{
		"alice": "alice-Pa55word!",
		"bob":   "bob-Pa55word?",
		"carol": "carol-Pa55 word",
		"dave":  "dave-Pa55word#",
	}
	salesMembers = []string{"bob@" + domain, "carol@" + domain}
)

var (
	moduleRoot string
	hostBin    string
	python     string
	slixErr    error // why /usr/bin/python3 cannot run slixmpp, nil if it can
	slixInfo   string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	moduleRoot = root
	tmp, err := os.MkdirTemp("", "parley-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	// Build the example host once; each test runs its own copy.
	hostBin = filepath.Join(tmp, "parley-host")
	args := []string{"build", "-o", hostBin}
	if os.Getenv("E2E_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./examples/host")...)
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot build examples/host: %v\n%s", err, out)
		return 1
	}

	python = os.Getenv("E2E_PYTHON")
	if python == "" {
		python = "/usr/bin/python3" // Debian's, where python3-slixmpp installs
	}
	out, err := exec.Command(python, "-c", "import slixmpp; print(slixmpp.__version__)").CombinedOutput()
	if err != nil {
		slixErr = fmt.Errorf("%s cannot import slixmpp (%v): %s", python, err, strings.TrimSpace(string(out)))
	} else {
		slixInfo = "slixmpp " + strings.TrimSpace(string(out))
	}
	return m.Run()
}

// requireSlixmpp skips the test when slixmpp is missing, or fails it on CI.
func requireSlixmpp(t *testing.T) {
	t.Helper()
	if slixErr == nil {
		return
	}
	msg := fmt.Sprintf("%v; install the Debian package python3-slixmpp (apt-get install -y python3-slixmpp)", slixErr)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// host is one running example host process.
type host struct {
	xmpp, xmpps, https string
	data, users        string
	log                *syncBuffer
	cmd                *exec.Cmd
	exited             chan struct{}
	exitErr            error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeUsers(t *testing.T, path string) {
	t.Helper()
	type user struct {
		Address     string `json:"address"`
		Name        string `json:"name"`
		Password    string `json:"password"`
		ChatEnabled bool   `json:"chat_enabled"`
	}
	names := map[string]string{"alice": "Alice Liddell", "bob": "Bob Builder", "carol": "Carol Danvers", "dave": "Dave Bowman"}
	var users []user
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		users = append(users, user{Address: u + "@" + domain, Name: names[u], Password: passwords[u], ChatEnabled: u != "dave"})
	}
	b, err := json.MarshalIndent(map[string]any{
		"users":   users,
		"aliases": map[string][]string{"sales@" + domain: salesMembers},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeAddrs returns n distinct loopback addresses nobody listens on now.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
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

// startHost runs a fresh example host with its own ports, data directory
// and users file, and stops it when the test ends. On failure the host's
// log is printed.
func startHost(t *testing.T, domainRoster bool) *host {
	t.Helper()
	dir := t.TempDir()
	h := &host{data: filepath.Join(dir, "data"), users: filepath.Join(dir, "users.json"), log: new(syncBuffer), exited: make(chan struct{})}
	writeUsers(t, h.users)
	addrs := freeAddrs(t, 3)
	h.xmpp, h.xmpps, h.https = addrs[0], addrs[1], addrs[2]
	h.cmd = exec.Command(hostBin,
		"-domain", domain,
		"-data", h.data,
		"-users", h.users,
		"-xmpp-addr", h.xmpp,
		"-xmpps-addr", h.xmpps,
		"-http-addr", h.https,
		fmt.Sprintf("-domain-roster=%t", domainRoster),
		"-log-level", "debug",
	)
	h.cmd.Stdout = h.log
	h.cmd.Stderr = h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start host: %v", err)
	}
	go func() {
		h.exitErr = h.cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() { h.stop(t) })

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", h.xmpp, time.Second)
		if err == nil {
			c.Close()
			return h
		}
		select {
		case <-h.exited:
			t.Fatalf("host exited before listening on %s: %v", h.xmpp, h.exitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("host not listening on %s after 20s: %v", h.xmpp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *host) stop(t *testing.T) {
	select {
	case <-h.exited:
		t.Errorf("host exited during the test: %v", h.exitErr)
	default:
		h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("host did not stop within 10s of SIGTERM; killing it")
			h.cmd.Process.Kill()
			<-h.exited
		}
	}
	log := h.log.String()
	for _, bad := range []string{"panic:", "WARNING: DATA RACE", "fatal error:"} {
		if strings.Contains(log, bad) {
			t.Errorf("host log contains %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("---- host log (%s) ----\n%s---- end of host log ----", h.xmpp, log)
	}
}

// slix runs one scenario of e2e/slix/scenarios.py against h and fails the
// test, with the script's output, unless it passes.
func slix(t *testing.T, h *host, scenario string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, slixArgs(h, scenario, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("slixmpp scenario %q killed after 60s\n%s", scenario, out)
	}
	if err != nil {
		t.Fatalf("slixmpp scenario %q failed: %v\n%s", scenario, err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	return string(out)
}

func slixArgs(h *host, scenario string, args ...string) []string {
	return append([]string{
		filepath.Join(moduleRoot, "e2e", "slix", "scenarios.py"),
		"--addr", h.xmpp, "--tls-addr", h.xmpps, "--users", h.users, "--domain", domain, "--timeout", "45",
		scenario,
	}, args...)
}

// peer is a slixmpp scenario running in the background, for tests where
// another client drives the conversation.
type peer struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startSlix starts a background scenario and returns once it printed READY
// (logged in and waiting).
func startSlix(t *testing.T, h *host, scenario string, args ...string) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &peer{out: new(syncBuffer), cancel: cancel, done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, python, slixArgs(h, scenario, args...)...)
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.Stderr = p.out
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start slixmpp %s: %v", scenario, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			fmt.Fprintln(p.out, sc.Text())
			if !once && strings.HasPrefix(sc.Text(), "READY") {
				once = true
				close(ready)
			}
		}
		io.Copy(io.Discard, stdout)
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			t.Logf("---- slixmpp %s output ----\n%s---- end ----", scenario, p.out)
		}
	})
	select {
	case <-ready:
		return p
	case err := <-p.done:
		p.done <- err
		t.Fatalf("slixmpp %s exited before READY: %v", scenario, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("slixmpp %s not READY after 30s", scenario)
	}
	return nil
}

// wait waits for the scenario to end and fails the test unless it passed.
func (p *peer) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("slixmpp peer failed: %v", err)
		}
		t.Logf("%s", bytes.TrimSpace([]byte(p.out.String())))
	case <-time.After(timeout):
		t.Fatalf("slixmpp peer still running after %s", timeout)
	}
}
