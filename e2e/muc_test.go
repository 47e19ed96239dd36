//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Issue 8, multi-user chat: rooms on conference.<domain> (XEP-0045) as
// slixmpp's xep_0045 plugin uses them (e2e/slix/muc.py).

func TestMUC(t *testing.T) {
	requireSlixmpp(t)
	t.Logf("client: %s via %s", slixInfo, python)
	for _, tc := range []struct{ name, scenario string }{
		{"CreateAndConfigure", "muc-create-configure"},
		{"HistoryOnEntering", "muc-history"},
		{"Moderation", "muc-moderation"},
		{"Invitations", "muc-invitations"},
		{"ArchiveAndSelfPing", "muc-archive"},
		{"LeaveOnDisconnect", "muc-disconnect"},
		{"Registration", "muc-registration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, true)
			slixMUC(t, h, 60*time.Second, tc.scenario)
		})
	}
}

// A persistent room, its members, subject and history outlive a restart
// of the host.
func TestMUCPersistentAcrossRestart(t *testing.T) {
	requireSlixmpp(t)
	dir := t.TempDir()
	h := launchHost(t, dir)
	slixMUC(t, h, 60*time.Second, "muc-persist-create")
	h.stop(t)
	h = launchHost(t, dir)
	t.Cleanup(func() { h.stop(t) })
	slixMUC(t, h, 60*time.Second, "muc-persist-check")
}

// slixMUC runs one scenario of e2e/slix/muc.py against h.
func slixMUC(t *testing.T, h *host, limit time.Duration, scenario string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit+10*time.Second)
	defer cancel()
	argv := append([]string{
		filepath.Join(moduleRoot, "e2e", "slix", "muc.py"),
		"--addr", h.xmpp, "--tls-addr", h.xmpps, "--users", h.users, "--domain", domain,
		"--timeout", strconv.Itoa(int(limit / time.Second)),
		scenario,
	}, args...)
	if os.Getenv("E2E_VERBOSE") != "" {
		argv = append(argv[:1], append([]string{"-v"}, argv[1:]...)...)
	}
	cmd := exec.CommandContext(ctx, python, argv...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("slixmpp MUC scenario %q killed after %s\n%s", scenario, limit+10*time.Second, out)
	}
	if err != nil {
		log := h.log.String()
		if len(log) > 6000 {
			log = log[len(log)-6000:]
		}
		t.Fatalf("slixmpp MUC scenario %q failed: %v\n%s\n---- host log (end) ----\n%s", scenario, err, out, log)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	return string(out)
}
