//go:build browser

package browser

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPanelFiles runs panel_files.mjs: sharing files and links in the
// chat panel. Alice drops an image and picks a file from Actions (…) →
// Send a file; Bob (phone width) sees the thumbnail and the file link,
// opens the preview window and the conversation's file list; link cards
// come from a page the scenario serves itself, which the host fetches
// because it runs with -allow-private-links; too large, blocked and
// over-quota files get their errors.
func TestPanelFiles(t *testing.T) {
	h := startFilesHost(t)
	h.run(t, "panel_files.mjs")
}

// startFilesHost builds and starts the example host like startPanelHost,
// without the slixmpp peer and with link previews of loopback pages
// allowed.
func startFilesHost(t *testing.T) *panelHost {
	t.Helper()
	h := &panelHost{chromium: os.Getenv("CHROMIUM"), python: os.Getenv("E2E_PYTHON"), log: new(lockedBuffer)}
	if h.chromium == "" {
		h.chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(h.chromium)
	need(t, err == nil, h.chromium+" is missing: apt-get install -y chromium")
	h.node, err = exec.LookPath("node")
	need(t, err == nil, "node is missing: apt-get install -y nodejs npm")
	_, err = os.Stat(filepath.Join("node_modules", "playwright-core", "package.json"))
	need(t, err == nil, "playwright-core is missing: (cd e2e/browser && npm ci)")

	return launchHost(t, h, "-domain-roster=true", "-allow-private-links")
}
