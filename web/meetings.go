package web

import "embed"

// Meetings holds the online meeting pages under meetings/: the list of
// meetings with their cards, the create and settings forms, and the join
// page that becomes the lobby and then the meeting room. Plain HTML, CSS
// and JavaScript with no build step; package meeting serves them from its
// Handler, relative to its API, so they work wherever the host mounts it.
//
//go:embed meetings
var Meetings embed.FS
