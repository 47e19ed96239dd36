// Package browser tests Parley's web pages (package web) in a real
// browser: Debian's Chromium driven by playwright-core, against the
// example host (examples/host). panel.mjs is the webmail chat panel's
// scenario, with a slixmpp client (slixpeer.py) as the third party;
// strophe.mjs runs Strophe.js, a third-party web client library, in
// Chromium against the host's BOSH (XEP-0206) and WebSocket (RFC 7395)
// endpoints.
//
// The tests carry the build tag browser. Run them with
//
//	(cd e2e/browser && npm ci) && go test -tags browser -count=1 -v ./e2e/browser/
//
// or with scripts/test.sh, which installs what they need (chromium,
// nodejs, npm and python3-slixmpp from Debian, playwright-core and
// strophe.js from npm; no browser is downloaded). Screenshots land in
// e2e/browser/screenshots/.
package browser
