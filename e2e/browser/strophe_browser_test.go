//go:build browser

package browser

import (
	"testing"
)

// TestStropheInChromium runs strophe.mjs: Strophe.js, the third-party web
// client library under Converse.js, in Chromium on a page of another
// origin, over BOSH (XEP-0124/XEP-0206) and then WebSocket (RFC 7395). On
// each it finds the endpoint by host-meta.json, is refused with a wrong
// password, logs two users in with SCRAM (one with SCRAM-SHA-1 only) and
// they chat until one leaves.
func TestStropheInChromium(t *testing.T) {
	h := newPanelHost(t, "strophe.js", false)
	launchHost(t, h)
	h.run(t, "strophe.mjs")
}
