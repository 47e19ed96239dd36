//go:build browser

package browser

import (
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
	h := newPanelHost(t, "playwright-core", true)
	launchHost(t, h, "-domain-roster=true", "-media-udp-addr", ":"+strconv.Itoa(freeUDPPort(t)))
	h.run(t, "panel_calls.mjs")
}
