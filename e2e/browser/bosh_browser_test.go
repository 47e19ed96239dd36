//go:build browser

package browser

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBOSHStropheInChromium runs bosh.mjs: Strophe.js, a real BOSH client
// (XEP-0124/XEP-0206), in Chromium on a page of another origin, finds the
// endpoint by host-meta.json, logs two users in with SCRAM and they chat
// over the example host's /parley/http-bind.
func TestBOSHStropheInChromium(t *testing.T) {
	h := &panelHost{chromium: os.Getenv("CHROMIUM"), log: new(lockedBuffer)}
	if h.chromium == "" {
		h.chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(h.chromium)
	need(t, err == nil, h.chromium+" is missing: apt-get install -y chromium")
	h.node, err = exec.LookPath("node")
	need(t, err == nil, "node is missing: apt-get install -y nodejs npm")
	_, err = os.Stat(filepath.Join("node_modules", "strophe.js", "package.json"))
	need(t, err == nil, "strophe.js is missing: (cd e2e/browser && npm ci)")
	launchHost(t, h)
	h.run(t, "bosh.mjs")
}
