//go:build browser

package browser

import (
	"testing"
)

// TestBOSHStropheInChromium runs bosh.mjs: Strophe.js, a real BOSH client
// (XEP-0124/XEP-0206), in Chromium on a page of another origin, finds the
// endpoint by host-meta.json, logs two users in with SCRAM and they chat
// over the example host's /parley/http-bind.
func TestBOSHStropheInChromium(t *testing.T) {
	h := newPanelHost(t, "strophe.js", false)
	launchHost(t, h)
	h.run(t, "bosh.mjs")
}
