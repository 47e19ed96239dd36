//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Issue 8, personal eventing and friends: slixmpp (e2e/slix/pep.py, with
// its xep_0060/0163/0115, xep_0048/0049, xep_0084/0054 and xep_0191
// plugins) against the example host: PEP publish-options on OMEMO-shaped
// nodes, bookmarks shared between XEP-0048 and XEP-0402 clients, the
// avatar conversion between XEP-0084 and vCards, and blocking.
func TestPEP(t *testing.T) {
	requireSlixmpp(t)
	t.Logf("client: %s via %s", slixInfo, python)
	for _, tc := range []struct {
		name         string
		scenario     string
		domainRoster bool
	}{
		// Without the domain roster carol is a stranger to alice: the
		// open access model is what lets her read the device list.
		{"OMEMOPublishOptions", "omemo", false},
		{"BookmarksXEP0048And0402", "bookmarks", true},
		{"AvatarConversion", "avatar", true},
		{"Blocking", "blocking", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, tc.domainRoster)
			slixPEP(t, h, tc.scenario)
		})
	}
}

func slixPEP(t *testing.T, h *host, scenario string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join(moduleRoot, "e2e", "slix", "pep.py"),
		"--addr", h.xmpp, "--tls-addr", h.xmpps, "--users", h.users, "--domain", domain, "--timeout", "45", scenario)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("slixmpp PEP scenario %q killed after 60s\n%s", scenario, out)
	}
	if err != nil {
		t.Fatalf("slixmpp PEP scenario %q failed: %v\n%s", scenario, err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}
