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

// Issue 8, push notifications (XEP-0357): a slixmpp phone registers with
// an app server that another slixmpp client plays, and the notifications
// reach it while the phone is offline or its session waits detached for
// resumption (e2e/slix/push.py).
func TestPush(t *testing.T) {
	requireSlixmpp(t)
	t.Logf("client: %s via %s", slixInfo, python)
	for _, tc := range []struct{ name, scenario string }{
		{"Offline", "push-offline"},
		{"DetachedSession", "push-detached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, true)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, python, filepath.Join(moduleRoot, "e2e", "slix", "push.py"),
				"--addr", h.xmpp, "--tls-addr", h.xmpps, "--users", h.users, "--domain", domain, "--timeout", "45", tc.scenario)
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("slixmpp push scenario %q killed after 60s\n%s", tc.scenario, out)
			}
			if err != nil {
				t.Fatalf("slixmpp push scenario %q failed: %v\n%s\n---- host log (end) ----\n%s", tc.scenario, err, out, tail(h.log.String(), 6000))
			}
			t.Logf("%s", bytes.TrimSpace(out))
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
