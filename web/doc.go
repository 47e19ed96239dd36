// Package web holds Parley's browser client, embedded in the binary with
// go:embed so that a host serves it from its own origin with no build step
// and no third-party CDN.
//
// The chat panel is a custom element, <parley-chat>, that speaks XMPP over
// WebSocket (RFC 7395) to the Server's Handler. A host mounts its files
// next to Parley's handler and puts one script tag and one element in its
// webmail page:
//
//	mux.Handle("/parley/", http.StripPrefix("/parley", srv.Handler()))
//	mux.Handle("/parley/panel/", http.StripPrefix("/parley/panel", web.PanelHandler()))
//
//	<script type="module" src="/parley/panel/parley-chat.js"></script>
//	<parley-chat></parley-chat>
//
// The element's attributes, CSS custom properties, JavaScript API and
// events are documented in panel/README.md.
package web
