//go:build browser

package browser

import (
	"testing"
)

// TestPanelHistory runs panel_history.mjs: past chat sessions and
// meetings from the chat panel. The host runs with -session-gap 2s, so
// that three real chat sessions (messages sent through the server, a few
// seconds of quiet between them) are grouped as the default 30 minutes
// would group a day's chats. Alice (desktop) lists her sessions with Bob,
// opens one (in the panel and in a new window), and starts a meeting from
// Actions (…); Bob (phone width) sees the link and opens the join page.
func TestPanelHistory(t *testing.T) {
	h := startHistoryHost(t, "-session-gap", "2s")
	h.run(t, "panel_history.mjs")
}

// startHistoryHost builds and starts the example host like
// startPanelHost, without the slixmpp peer, with extra flags.
func startHistoryHost(t *testing.T, extra ...string) *panelHost {
	t.Helper()
	h := newPanelHost(t, "playwright-core", false)
	return launchHost(t, h, append([]string{"-domain-roster=true"}, extra...)...)
}
