#!/usr/bin/env bash
# The project's one test command: vet, unit tests with the race detector,
# then the end-to-end suite against the example host with real clients
# (slixmpp, gosrc.io/xmpp, go-sendxmpp). .ci/run execs it.
#
# Works as root on a fresh Debian 12 machine with no standard input: it
# installs the Debian packages the suite needs when they are missing.
set -euo pipefail

cd "$(dirname "$0")/.."

section() {
	printf '\n==== %s ====\n' "$*"
}

# Go lives in /usr/local/go on our machines, which a non-login shell may
# not have on its PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "test.sh: go not found (expected on PATH or in /usr/local/go/bin)" >&2
	exit 1
fi

section "Debian packages"
# python3-slixmpp and go-sendxmpp are the third-party clients of the e2e
# suite; gcc and libc6-dev are what -race (cgo) needs; ffmpeg's ffprobe
# reads the meeting recordings of the browser suite; prosody is the other
# server of the federation tests, which run their own unprivileged copy
# from a temporary directory on loopback ports.
need=()
for pkg in python3-slixmpp go-sendxmpp gcc libc6-dev ffmpeg prosody; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		need+=("$pkg")
	fi
done
if [ ${#need[@]} -eq 0 ]; then
	echo "all present: python3-slixmpp go-sendxmpp gcc libc6-dev ffmpeg prosody"
else
	echo "missing: ${need[*]}"
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			echo "test.sh: not root and no password-less sudo: cannot install ${need[*]}" >&2
			echo "test.sh: the e2e tests that need them will skip (or fail with CI=true)" >&2
			need=()
		fi
	fi
	if [ ${#need[@]} -gt 0 ]; then
		"${sudo[@]}" apt-get update -q </dev/null
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" </dev/null
	fi
fi

failed=()
step() {
	local name=$1
	shift
	section "$name"
	echo "+ $*"
	local start=$SECONDS
	if "$@"; then
		echo "---- $name: ok ($((SECONDS - start))s)"
	else
		echo "---- $name: FAILED ($((SECONDS - start))s)"
		failed+=("$name")
	fi
}

go version
step "go vet" go vet ./...
step "go vet (e2e tag)" go vet -tags e2e ./e2e/...
# The SFU's tests run in real time (simulcast switches, retransmissions,
# keyframes within a second): they run alone, not beside other packages'
# tests on the same two cores.
step "unit tests (race)" go test -race -count=1 $(go list ./... | grep -v '/media$')
step "media tests (race, alone)" go test -race -count=1 ./media/...
step "end-to-end tests" go test -tags e2e -count=1 -v ./e2e/...

# The browser suite: Parley's web pages in Debian's Chromium, driven by
# playwright-core from npm (which never downloads a browser here).
section "browser suite: Chromium, Node.js and playwright-core"
browser_ok=1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then
	echo "installing chromium nodejs npm"
	bsudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then bsudo=(sudo -n); else bsudo=(false); fi
	fi
	if ! { "${bsudo[@]}" apt-get update -q </dev/null &&
		"${bsudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium nodejs npm </dev/null; }; then
		echo "test.sh: cannot install chromium, nodejs and npm" >&2
		browser_ok=0
	fi
fi
if [ "$browser_ok" = 1 ] && { [ ! -f e2e/browser/node_modules/playwright-core/package.json ] || [ ! -f e2e/browser/node_modules/strophe.js/package.json ]; }; then
	if ! (cd e2e/browser && { npm ci --no-audit --no-fund </dev/null || npm install --no-audit --no-fund </dev/null; }); then
		echo "test.sh: npm could not install playwright-core and strophe.js in e2e/browser" >&2
		browser_ok=0
	fi
fi
if [ "$browser_ok" = 1 ]; then
	node --version
	/usr/bin/chromium --version 2>/dev/null || true
	step "go vet (browser tag)" go vet -tags browser ./e2e/browser/
	step "browser tests" go test -tags browser -count=1 -v ./e2e/browser/
else
	failed+=("browser tests (tools missing)")
fi

section "summary"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
echo "all passed"
