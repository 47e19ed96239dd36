//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 3, message history: the archive (XEP-0313 with XEP-0059 paging,
// XEP-0359 stanza-ids, XEP-0431 full-text), carbons (XEP-0280) and stream
// management (XEP-0198), seen by slixmpp (e2e/slix/history.py) and, for
// the crash test, by a raw client that counts the server's acks.

// resumeTimeoutFlag is the example host's flag for the XEP-0198
// resumption window, needed to see a resumption fail without waiting the
// default five minutes.
const resumeTimeoutFlag = "resume-timeout"

var hostFlags = sync.OnceValue(func() string {
	out, _ := exec.Command(hostBin, "-h").CombinedOutput()
	return string(out)
})

func hostHasFlag(name string) bool {
	return regexp.MustCompile(`(?m)^\s*-` + regexp.QuoteMeta(name) + `\b`).MatchString(hostFlags())
}

func TestHistory(t *testing.T) {
	requireSlixmpp(t)
	t.Logf("client: %s via %s", slixInfo, python)
	for _, tc := range []struct {
		name, scenario string
		args           []string
	}{
		{"MAMPagingFromTheEnd", "mam-paging", []string{"100", "10"}},
		{"CarbonsTwoResources", "carbons", nil},
		{"ResumeAfterTCPReset", "resume-after-cut", []string{"60", "rst"}},
		{"ResumeAfterSilentCut", "resume-after-cut", []string{"60", "silent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, true)
			slixHistory(t, h, 60*time.Second, tc.scenario, tc.args...)
			for _, m := range resumedLine.FindAllStringSubmatch(h.log.String(), -1) {
				t.Logf("host: stream resumed, %s stanzas replayed", m[1])
			}
		})
	}
	t.Run("FreshLoginSameResourceWithinWindow", func(t *testing.T) {
		t.Parallel()
		var h *host
		if hostHasFlag(resumeTimeoutFlag) {
			h = launchHost(t, t.TempDir(), "-"+resumeTimeoutFlag, "4s")
			t.Cleanup(func() { h.stop(t) })
		} else {
			t.Logf("examples/host has no -%s flag: with the default 5-minute window only the first half (the messages of the gap reach the new session) is checked", resumeTimeoutFlag)
			h = startHost(t, true)
		}
		slixHistory(t, h, 60*time.Second, "fresh-login-within-window", "10")
	})
	t.Run("OfflineAfterFailedResumption", func(t *testing.T) {
		if !hostHasFlag(resumeTimeoutFlag) {
			t.Skipf("examples/host has no -%s flag: the resumption window is the default 5 minutes, too long to wait for here", resumeTimeoutFlag)
		}
		t.Parallel()
		h := launchHost(t, t.TempDir(), "-"+resumeTimeoutFlag, "4s")
		t.Cleanup(func() { h.stop(t) })
		slixHistory(t, h, 60*time.Second, "offline-after-failed-resume", "20")
	})
}

// slixHistory runs one scenario of e2e/slix/history.py against h.
func slixHistory(t *testing.T, h *host, limit time.Duration, scenario string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit+10*time.Second)
	defer cancel()
	argv := append([]string{
		filepath.Join(moduleRoot, "e2e", "slix", "history.py"),
		"--addr", h.xmpp, "--tls-addr", h.xmpps, "--users", h.users, "--domain", domain,
		"--timeout", strconv.Itoa(int(limit / time.Second)),
		scenario,
	}, args...)
	cmd := exec.CommandContext(ctx, python, argv...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("slixmpp history scenario %q killed after %s\n%s", scenario, limit+10*time.Second, out)
	}
	if err != nil {
		t.Fatalf("slixmpp history scenario %q failed: %v\n%s", scenario, err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	return string(out)
}

// launchHost starts the example host on a given data directory (kept
// between runs) with fresh ports and extra flags. Unlike startHost it does
// not stop the host at the end of the test: the caller does, with stop or
// by killing it.
func launchHost(t *testing.T, dir string, extra ...string) *host {
	t.Helper()
	h := &host{data: filepath.Join(dir, "data"), users: filepath.Join(dir, "users.json"), log: new(syncBuffer), exited: make(chan struct{})}
	if _, err := os.Stat(h.users); err != nil {
		writeUsers(t, h.users)
	}
	addrs := freeAddrs(t, 3)
	h.xmpp, h.xmpps, h.https = addrs[0], addrs[1], addrs[2]
	h.cmd = exec.Command(hostBin, append([]string{
		"-domain", domain,
		"-data", h.data,
		"-users", h.users,
		"-xmpp-addr", h.xmpp,
		"-xmpps-addr", h.xmpps,
		"-http-addr", h.https,
		"-log-level", "debug",
	}, extra...)...)
	h.cmd.Stdout = h.log
	h.cmd.Stderr = h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start host: %v", err)
	}
	go func() {
		h.exitErr = h.cmd.Wait()
		close(h.exited)
	}()
	if err := waitListening(h, 20*time.Second); err != nil {
		h.cmd.Process.Kill()
		<-h.exited
		t.Fatalf("%v\n---- host log ----\n%s", err, h.log)
	}
	return h
}

func waitListening(h *host, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", h.xmpps, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-h.exited:
			return fmt.Errorf("host exited before listening on %s: %v", h.xmpps, h.exitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host not listening on %s after %s: %v", h.xmpps, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var resumedLine = regexp.MustCompile(`msg="stream resumed".*replayed=(\d+)`)

var crashBody = regexp.MustCompile(`^crash (\d+) of (\d+)$`)

// TestCrashKeepsAckedMessages: alice, with stream management, sends a
// burst of numbered messages to bob, who is offline, asking for an ack
// after each one; the host is killed with SIGKILL halfway. Restarted on
// the same data directory, it must hand bob, as offline messages, and keep
// in both archives, every message its acks covered, in order.
func TestCrashKeepsAckedMessages(t *testing.T) {
	t.Parallel()
	const total = 200
	dir := t.TempDir()
	h := launchHost(t, dir)
	logs := []*host{h}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("---- host log, run %d (%s) ----\n%s---- end of host log ----", i+1, l.xmpps, l.log)
			}
		}
	})

	alice, err := dialRaw(h.xmpps, "alice@"+domain, passwords["alice"], "crash")
	if err != nil {
		h.cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := alice.send(`<enable xmlns='` + nsSM + `'/>`); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Uint32 // stanzas alice took from the server, for its <r/>
	var errs []string
	var errMu sync.Mutex
	if _, err := alice.nextUntil(10*time.Second, func(el *xnode) bool {
		if el.XMLName.Space == nsSM && el.XMLName.Local == "failed" {
			t.Fatalf("stream management refused: %s", el)
		}
		return el.XMLName.Space == nsSM && el.XMLName.Local == "enabled"
	}, nil); err != nil {
		t.Fatalf("waiting for <enabled/>: %v", err)
	}

	var acked atomic.Uint32 // the highest h the server acknowledged
	halfAcked := make(chan struct{})
	var once sync.Once
	readDone := make(chan error, 1)
	go func() {
		for {
			el, err := alice.next()
			if err != nil {
				readDone <- err
				return
			}
			switch {
			case el.XMLName.Space == nsSM && el.XMLName.Local == "a":
				n, err := strconv.ParseUint(el.attr("h"), 10, 32)
				if err != nil {
					readDone <- fmt.Errorf("bad <a/>: %s", el)
					return
				}
				if uint32(n) > acked.Load() {
					acked.Store(uint32(n))
				}
				if n >= total/2 {
					once.Do(func() { close(halfAcked) })
				}
			case el.XMLName.Space == nsSM && el.XMLName.Local == "r":
				alice.send(fmt.Sprintf(`<a xmlns='%s' h='%d'/>`, nsSM, handled.Load()))
			case el.XMLName.Space == nsCl:
				handled.Add(1)
				if el.attr("type") == "error" {
					errMu.Lock()
					errs = append(errs, el.String())
					errMu.Unlock()
				}
			}
		}
	}()

	// The burst: a message then <r/>, paced a little; the host is killed
	// the moment it acknowledges half of them, with more in flight.
	var sent atomic.Int32
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for i := 1; i <= total; i++ {
			msg := fmt.Sprintf(`<message to='bob@%s' type='chat' id='crash-%d'><body>crash %d of %d</body></message><r xmlns='%s'/>`,
				domain, i, i, total, nsSM)
			if alice.send(msg) != nil {
				return
			}
			sent.Store(int32(i))
			time.Sleep(3 * time.Millisecond)
		}
	}()
	select {
	case <-halfAcked:
	case err := <-readDone:
		t.Fatalf("alice's stream ended before half the burst was acknowledged (acked %d of %d written): %v", acked.Load(), sent.Load(), err)
	case <-time.After(40 * time.Second):
		t.Fatalf("the host acknowledged only %d of %d messages in 40s", acked.Load(), sent.Load())
	}
	sentAtKill, ackedAtKill := sent.Load(), acked.Load()
	if err := h.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-h.exited
	// Whatever the reader still had buffered was sent before the kill.
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
		t.Errorf("alice's connection still open 5s after the host was killed")
	}
	alice.conn.Close()
	<-sendDone
	h.stopKilled(t)
	killedAt := sent.Load() // an upper bound: writes may succeed a moment after the kill
	ackedN := int(acked.Load())
	t.Logf("host killed (SIGKILL) on the ack for half the burst: alice had written %d of %d messages, h=%d; in the end %d written, %d acknowledged",
		sentAtKill, total, ackedAtKill, killedAt, ackedN)
	if ackedN == 0 {
		t.Fatalf("the host acknowledged none of alice's messages before it was killed")
	}
	if ackedN > int(killedAt) {
		t.Fatalf("the host acknowledged h=%d but alice sent only %d", ackedN, killedAt)
	}

	// Restart on the same data directory; bob comes online for the first time.
	h2 := launchHost(t, dir)
	logs = append(logs, h2)
	t.Cleanup(func() { h2.stop(t) })
	bob, err := dialRaw(h2.xmpps, "bob@"+domain, passwords["bob"], "after-crash")
	if err != nil {
		t.Fatal(err)
	}
	var offline []int
	var offlineBodies []string
	var noDelay []string
	collect := func(el *xnode) {
		if el.XMLName.Local != "message" || el.attr("type") == "error" {
			return
		}
		b := el.child("", "body")
		if b == nil || !strings.HasPrefix(el.attr("from"), "alice@"+domain) {
			return
		}
		m := crashBody.FindStringSubmatch(b.Text)
		if m == nil {
			return
		}
		n, _ := strconv.Atoi(m[1])
		offline = append(offline, n)
		offlineBodies = append(offlineBodies, b.Text)
		if el.child(nsDly, "delay") == nil {
			noDelay = append(noDelay, b.Text)
		}
	}
	if err := bob.send(`<presence/><iq type='get' id='ping1' to='` + domain + `'><ping xmlns='urn:xmpp:ping'/></iq>`); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.nextUntil(15*time.Second, func(el *xnode) bool { return el.XMLName.Local == "iq" && el.attr("id") == "ping1" }, collect); err != nil {
		t.Fatalf("bob's ping after login: %v", err)
	}
	// Offline messages may still be on their way: read until 1.5s pass
	// without one (the decoder is done after the deadline: MAM is read on
	// new connections).
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		bob.conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		el, err := bob.next()
		if err != nil {
			break
		}
		collect(el)
	}
	bob.conn.Close()
	bobArch, err := queryArchive(h2, "bob", "alice@"+domain)
	if err != nil {
		t.Fatalf("bob's archive: %v", err)
	}
	aliceArch, err := queryArchive(h2, "alice", "bob@"+domain)
	if err != nil {
		t.Fatalf("alice's archive: %v", err)
	}

	errMu.Lock()
	if len(errs) > 0 {
		t.Errorf("alice got error stanzas for her burst: %s", errs)
	}
	errMu.Unlock()
	if len(noDelay) > 0 {
		t.Errorf("%d offline messages came without an XEP-0203 <delay/>: %q", len(noDelay), noDelay)
	}
	bobNums := archiveNumbers(t, bobArch, "bob")
	aliceNums := archiveNumbers(t, aliceArch, "alice")
	t.Logf("sent %d, acknowledged %d; after the restart bob got %d offline messages (numbers %s); bob's archive holds %d (%s), alice's %d (%s)",
		killedAt, ackedN, len(offline), spans(offline), len(bobNums), spans(bobNums), len(aliceNums), spans(aliceNums))
	for _, c := range []struct {
		what string
		nums []int
	}{{"bob's offline messages", offline}, {"bob's archive", bobNums}, {"alice's archive", aliceNums}} {
		checkCovers(t, c.what, c.nums, ackedN, int(killedAt))
	}
	// Archived before delivery: nothing stored offline is missing from the archives.
	for _, n := range offline {
		if !contains(bobNums, n) || !contains(aliceNums, n) {
			t.Errorf("message %d was stored offline for bob but is not in both archives (bob %v, alice %v)", n, contains(bobNums, n), contains(aliceNums, n))
		}
	}
}

func (h *host) stopKilled(t *testing.T) {
	log := h.log.String()
	for _, bad := range []string{"panic:", "WARNING: DATA RACE", "fatal error:"} {
		if strings.Contains(log, bad) {
			t.Errorf("host log (before the kill) contains %q", bad)
		}
	}
}

// queryArchive logs user in on h and reads the whole archive with 'with'.
func queryArchive(h *host, user, with string) ([]archived, error) {
	c, err := dialRaw(h.xmpps, user+"@"+domain, passwords[user], "mam")
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.mamAll(with, nil)
}

// archiveNumbers returns the numbers of the crash messages in an archive,
// in archive order, checking that the ids are distinct.
func archiveNumbers(t *testing.T, arch []archived, who string) []int {
	t.Helper()
	var nums []int
	seen := map[string]bool{}
	for _, a := range arch {
		if seen[a.id] {
			t.Errorf("%s's archive returned id %s twice", who, a.id)
		}
		seen[a.id] = true
		m := crashBody.FindStringSubmatch(a.body)
		if m == nil {
			t.Errorf("%s's archive holds an unexpected message %+v", who, a)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		nums = append(nums, n)
		if a.stamp == "" {
			t.Errorf("%s's archived message %d has no delay stamp", who, n)
		}
	}
	return nums
}

// checkCovers fails unless nums starts with 1..acked, in order, and holds
// nothing twice and nothing never sent.
func checkCovers(t *testing.T, what string, nums []int, acked, sent int) {
	t.Helper()
	var missing, dups, beyond []int
	count := map[int]int{}
	for _, n := range nums {
		count[n]++
		if count[n] == 2 {
			dups = append(dups, n)
		}
		if n > sent {
			beyond = append(beyond, n)
		}
	}
	for n := 1; n <= acked; n++ {
		if count[n] == 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d of the %d acknowledged messages are lost: %s", what, len(missing), acked, spans(missing))
	}
	if len(dups) > 0 {
		t.Errorf("%s: messages held twice: %v", what, dups)
	}
	if len(beyond) > 0 {
		t.Errorf("%s: messages alice never sent: %v", what, beyond)
	}
	if !sort.IntsAreSorted(nums) {
		t.Errorf("%s: out of order: %v", what, nums)
	}
	// Past the acks, anything the host took before dying may be there, but
	// without holes: it handles a stream's stanzas in order.
	if len(dups) == 0 && len(missing) == 0 && sort.IntsAreSorted(nums) && len(nums) > 0 && nums[len(nums)-1] != len(nums) {
		t.Errorf("%s: holes after the acknowledged ones: %s", what, spans(nums))
	}
}

func contains(s []int, n int) bool {
	for _, x := range s {
		if x == n {
			return true
		}
	}
	return false
}

// spans renders numbers compactly: "1-97,99".
func spans(nums []int) string {
	if len(nums) == 0 {
		return "none"
	}
	var b strings.Builder
	start, prev := nums[0], nums[0]
	flush := func() {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if start == prev {
			fmt.Fprintf(&b, "%d", start)
		} else {
			fmt.Fprintf(&b, "%d-%d", start, prev)
		}
	}
	for _, n := range nums[1:] {
		if n == prev+1 {
			prev = n
			continue
		}
		flush()
		start, prev = n, n
	}
	flush()
	return b.String()
}
