//go:build browser

package browser

import (
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
	h := newPanelHost(t, "playwright-core", false)
	return launchHost(t, h, "-domain-roster=true", "-allow-private-links")
}
