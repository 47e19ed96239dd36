//go:build browser

package browser

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestPanelCalls runs panel_calls.mjs: audio and video calls from the
// chat panel's Actions (…) through Parley's SFU, the call link in the
// other side's panel and in a slixmpp client, and desktop notifications
// with the title badge while the tab is hidden. The example host runs
// with the SFU on a free UDP port on every address (Chromium gathers no
// loopback candidates).
func TestPanelCalls(t *testing.T) {
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
	_, err = os.Stat(filepath.Join("node_modules", "playwright-core", "package.json"))
	need(t, err == nil, "playwright-core is missing: (cd e2e/browser && npm ci)")
	out, err := exec.Command(h.python, "-c", "import slixmpp").CombinedOutput()
	need(t, err == nil, fmt.Sprintf("%s cannot import slixmpp: apt-get install -y python3-slixmpp (%s)", h.python, bytes.TrimSpace(out)))

	launchHost(t, h, "-domain-roster=true", "-media-udp-addr", ":"+strconv.Itoa(freeUDPPort(t)))
	h.run(t, "panel_calls.mjs")
}
