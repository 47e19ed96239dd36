// Package e2e drives clients nobody here wrote against the running example
// host (examples/host): slixmpp from Debian's python3-slixmpp, the
// gosrc.io/xmpp client library, and go-sendxmpp.
//
// The tests carry the build tag e2e so that go test ./... stays fast. Run
// them with
//
//	go test -tags e2e -count=1 -v ./e2e/...
//
// or with scripts/test.sh, which installs the Debian packages they need.
// Without python3-slixmpp the slixmpp tests skip, except when CI=true,
// where they fail.
package e2e
