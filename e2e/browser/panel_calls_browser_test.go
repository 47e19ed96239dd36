//go:build browser

package browser

import "testing"

// TestPanelCalls runs panel_calls.mjs: audio and video calls from the
// chat panel's Actions (…) through Parley's SFU, the call link in the
// other side's panel and in a slixmpp client, and desktop notifications
// with the title badge while the tab is hidden. The example host runs
// with the SFU on a free UDP port on 127.0.0.1 only; Chromium gathers a
// loopback candidate (--allow-loopback-in-peer-connection, panel-lib.mjs)
// and panel_calls.mjs checks that both ends of every selected candidate
// pair are 127.0.0.1.
func TestPanelCalls(t *testing.T) {
	h := newPanelHost(t, "playwright-core", true)
	launchHost(t, h, "-domain-roster=true", "-media-udp-addr", "127.0.0.1:0")
	h.run(t, "panel_calls.mjs")
}
