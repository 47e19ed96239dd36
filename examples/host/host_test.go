package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/pbkdf2"
)

// buildHost compiles the command once per test run.
var buildHost = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "parley-host-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "host")
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

type hostProc struct {
	cmd                *exec.Cmd
	mu                 sync.Mutex
	stdout             bytes.Buffer
	stderr             bytes.Buffer
	ready              chan struct{}
	exited             chan error
	xmpp, xmpps, https string
}

func (h *hostProc) output() (string, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stdout.String(), h.stderr.String()
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

var addrLine = regexp.MustCompile(`(?m)^  (XMPP, STARTTLS|XMPP, direct TLS|HTTPS) +(\S+)`)

// startHost runs the host on 127.0.0.1 with ports the kernel picks, and
// returns once it has printed where it listens.
func startHost(t *testing.T, data string, extra ...string) *hostProc {
	t.Helper()
	bin, err := buildHost()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-data", data, "-xmpp-addr", "127.0.0.1:0", "-xmpps-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, extra...)
	h := &hostProc{cmd: exec.Command(bin, args...), ready: make(chan struct{}), exited: make(chan error, 1)}
	h.cmd.Stderr = lockedWriter{&h.mu, &h.stderr}
	pipe, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			h.mu.Lock()
			h.stdout.WriteString(sc.Text() + "\n")
			done := strings.HasPrefix(sc.Text(), "In an XMPP client")
			h.mu.Unlock()
			if done {
				close(h.ready)
			}
		}
		h.exited <- h.cmd.Wait()
	}()
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			h.cmd.Process.Kill()
		}
	})
	select {
	case <-h.ready:
	case err := <-h.exited:
		out, errOut := h.output()
		t.Fatalf("host exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	case <-time.After(10 * time.Second):
		out, errOut := h.output()
		t.Fatalf("host not ready after 10s\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	out, _ := h.output()
	for _, m := range addrLine.FindAllStringSubmatch(out, -1) {
		switch m[1] {
		case "XMPP, STARTTLS":
			h.xmpp = m[2]
		case "XMPP, direct TLS":
			h.xmpps = m[2]
		case "HTTPS":
			h.https = m[2]
		}
	}
	if h.xmpp == "" || h.xmpps == "" || h.https == "" {
		t.Fatalf("addresses missing from the banner:\n%s", out)
	}
	return h
}

// stop sends SIGTERM and expects a clean exit.
func (h *hostProc) stop(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.exited:
		if err != nil {
			_, errOut := h.output()
			t.Fatalf("host exit after SIGTERM: %v\nstderr:\n%s", err, errOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("host still running 10s after SIGTERM")
	}
}

var userLine = regexp.MustCompile(`(?m)^  (\w+)@example\.test +password: (\S+)`)

func demoPasswords(t *testing.T, stdout string) map[string]string {
	t.Helper()
	pw := map[string]string{}
	for _, m := range userLine.FindAllStringSubmatch(stdout, -1) {
		pw[m[1]] = m[2]
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if pw[u] == "" {
			t.Errorf("no password printed for %s:\n%s", u, stdout)
		}
	}
	if !strings.Contains(stdout, "sales@example.test") || !strings.Contains(stdout, "alias of alice@example.test, bob@example.test") {
		t.Errorf("the sales alias is not printed:\n%s", stdout)
	}
	return pw
}

func TestHostStartsAndRestarts(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGTERM")
	}
	data := t.TempDir()

	h := startHost(t, data)
	out, _ := h.output()
	pw := demoPasswords(t, out)
	for _, a := range []string{h.xmpp, h.xmpps, h.https} {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err != nil {
			t.Fatalf("port not open: %v", err)
		}
		c.Close()
	}
	for _, f := range []string{"users.json", "key.pem", "parley.db"} {
		if fi, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", f, fi.Mode())
		}
	}
	pool := x509.NewCertPool()
	certPEM, err := os.ReadFile(filepath.Join(data, "cert.pem"))
	if err != nil || !pool.AppendCertsFromPEM(certPEM) {
		t.Fatalf("cert.pem: %v", err)
	}
	scramLogin(t, h.xmpps, pool, "alice@example.test", pw["alice"])
	if got := scramLogin0(t, h.xmpps, pool, "bob@example.test", pw["alice"]); got != "failure" {
		t.Errorf("login with the wrong password: %s", got)
	}
	checkHTTPS(t, h.https, pool)
	h.stop(t)

	usersJSON, _ := os.ReadFile(filepath.Join(data, "users.json"))
	var cache scramCacheFile
	raw, err := os.ReadFile(filepath.Join(data, "scram-cache.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cache); err != nil || len(cache.Credentials) != 3 {
		t.Fatalf("scram-cache.json has %d credentials, err %v", len(cache.Credentials), err)
	}

	// Second run: same users, certificate and keys.
	h = startHost(t, data)
	out2, errOut := h.output()
	if pw2 := demoPasswords(t, out2); pw2["alice"] != pw["alice"] || pw2["carol"] != pw["carol"] {
		t.Errorf("second run printed other passwords: %v, first %v", pw2, pw)
	}
	if !strings.Contains(errOut, `msg="SCRAM keys loaded"`) || !strings.Contains(errOut, "accepted=3") {
		t.Errorf("the SCRAM key cache was not used:\n%s", errOut)
	}
	if strings.Contains(errOut, "made") {
		t.Errorf("second run made something new:\n%s", errOut)
	}
	scramLogin(t, h.xmpps, pool, "carol@example.test", pw["carol"])
	h.stop(t)
	if b, _ := os.ReadFile(filepath.Join(data, "users.json")); !bytes.Equal(b, usersJSON) {
		t.Error("users.json changed on the second run")
	}
	if b, _ := os.ReadFile(filepath.Join(data, "cert.pem")); !bytes.Equal(b, certPEM) {
		t.Error("cert.pem changed on the second run")
	}
	if b, _ := os.ReadFile(filepath.Join(data, "scram-cache.json")); !bytes.Equal(b, raw) {
		t.Error("scram-cache.json was rewritten though nothing changed")
	}
}

func TestHostUsersFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGTERM")
	}
	data := t.TempDir()
	file := filepath.Join(t.TempDir(), "users.json")
	os.WriteFile(file, []byte(`{"users":[
		{"address":"Dora@Example.test","name":"Dora","password":"dora-pw"},
		{"address":"eve@example.test","password":"eve-pw","chat_enabled":false}],
		"aliases":{"first-line.support@example.test":["dora@example.test"]}}`), 0o600)
	h := startHost(t, data, "-users", file, "-domain-roster=false")
	out, _ := h.output()
	if !strings.Contains(out, "2 users and 1 aliases from "+file) || strings.Contains(out, "dora-pw") {
		t.Errorf("banner for a users file:\n%s", out)
	}
	pool := x509.NewCertPool()
	certPEM, _ := os.ReadFile(filepath.Join(data, "cert.pem"))
	pool.AppendCertsFromPEM(certPEM)
	scramLogin(t, h.xmpps, pool, "dora@example.test", "dora-pw")
	h.stop(t)
	if _, err := os.Stat(filepath.Join(data, "users.json")); err == nil {
		t.Error("demo users were made although -users was given")
	}
}

func TestUsersDirectory(t *testing.T) {
	no := false
	u := &usersSource{file: usersFile{
		Users: []userSpec{
			{Address: "a@example.test", Password: "x"},
			{Address: "b@other.test", Password: "y", ChatEnabled: &no},
		},
		Aliases: map[string][]string{"first-line.support@example.test": {"a@example.test"}},
	}}
	dir, domains, err := u.directory("Example.Test")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(domains) != "[example.test other.test]" {
		t.Errorf("domains = %v", domains)
	}
	ctx := t.Context()
	if e, _ := dir.Lookup(ctx, "a@example.test"); !e.ChatEnabled {
		t.Error("chat_enabled does not default to true")
	}
	if e, _ := dir.Lookup(ctx, "b@other.test"); e.ChatEnabled {
		t.Error("chat_enabled false ignored")
	}
	if e, _ := dir.Lookup(ctx, "first-line.support@example.test"); e.Name != "First Line Support" {
		t.Errorf("alias name %q", e.Name)
	}
	u.file.Users = append(u.file.Users, userSpec{Address: "c@example.test"})
	if _, _, err := u.directory("example.test"); err == nil {
		t.Error("a user without a password was accepted")
	}
	if got := aliasName("sales@example.test"); got != "Sales" {
		t.Errorf("aliasName = %q", got)
	}
}

// scramLogin logs in with SCRAM-SHA-256 over direct TLS and fails the test
// unless the server accepts and proves it knows the keys.
func scramLogin(t *testing.T, addr string, pool *x509.CertPool, user, password string) {
	t.Helper()
	if got := scramLogin0(t, addr, pool, user, password); got != "success" {
		t.Fatalf("SCRAM-SHA-256 login as %s: %s", user, got)
	}
}

func scramLogin0(t *testing.T, addr string, pool *x509.CertPool, user, password string) string {
	t.Helper()
	// The certificate must be valid for the mail domain.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "example.test", NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, `<?xml version='1.0'?><stream:stream to='example.test' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	dec := xml.NewDecoder(conn)
	next := func() (xml.StartElement, string) {
		for {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if se.Name.Local == "stream" {
					continue
				}
				var body struct {
					Inner string `xml:",innerxml"`
				}
				if err := dec.DecodeElement(&body, &se); err != nil {
					t.Fatal(err)
				}
				return se, body.Inner
			}
		}
	}
	se, features := next()
	if se.Name.Local != "features" || !strings.Contains(features, "<mechanism>SCRAM-SHA-256</mechanism>") {
		t.Fatalf("stream features do not offer SCRAM-SHA-256: %s", features)
	}

	nonce := base64.RawStdEncoding.EncodeToString([]byte(rand.Text()))
	clientFirstBare := "n=" + user + ",r=" + nonce
	b64 := base64.StdEncoding.EncodeToString
	fmt.Fprintf(conn, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>`, b64([]byte("n,,"+clientFirstBare)))
	se, body := next()
	if se.Name.Local != "challenge" {
		return se.Name.Local + ": " + body
	}
	sf, _ := base64.StdEncoding.DecodeString(body)
	serverFirst := string(sf)
	attrs := map[string]string{}
	for _, kv := range strings.Split(serverFirst, ",") {
		k, v, _ := strings.Cut(kv, "=")
		attrs[k] = v
	}
	salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
	var iter int
	fmt.Sscan(attrs["i"], &iter)
	if !strings.HasPrefix(attrs["r"], nonce) || len(salt) == 0 || iter < 4096 {
		t.Fatalf("bad server-first-message %q", serverFirst)
	}
	salted := pbkdf2.Key([]byte(password), salt, iter, sha256.Size, sha256.New)
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	finalNoProof := "c=biws,r=" + attrs["r"]
	authMessage := clientFirstBare + "," + serverFirst + "," + finalNoProof
	sig := mac(storedKey[:], authMessage)
	for i := range sig {
		sig[i] ^= clientKey[i]
	}
	fmt.Fprintf(conn, `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>`, b64([]byte(finalNoProof+",p="+b64(sig))))
	se, body = next()
	if se.Name.Local != "success" {
		return se.Name.Local
	}
	v, _ := base64.StdEncoding.DecodeString(body)
	if want := "v=" + b64(mac(mac(salted, "Server Key"), authMessage)); string(v) != want {
		t.Errorf("server signature %q, want %q", v, want)
	}
	return "success"
}

func checkHTTPS(t *testing.T, addr string, pool *x509.CertPool) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	defer c.CloseIdleConnections()
	for path, want := range map[string]string{"/": "Parley example host", "/metrics": "# EOF"} {
		resp, err := c.Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s\n%s", path, resp.Status, body)
		}
	}
}
