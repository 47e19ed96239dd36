package media

import (
	"regexp"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

var ufragRE = regexp.MustCompile(`a=ice-ufrag:(\S+)`)

func ufragOf(d *webrtc.SessionDescription) string {
	if d == nil {
		return ""
	}
	m := ufragRE.FindStringSubmatch(d.SDP)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestICERestart: a client whose network changed restarts ICE on both
// connections without rejoining: on "sub" it asks (iceRestart) and the
// SFU offers new credentials; on "pub" it offers new credentials and the
// SFU answers with its own. Media keeps flowing through both restarts.
func TestICERestart(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	video := pub.publish(synthSpec{source: SourceCamera, keyframeEvery: 30})[0]
	rt := sub.track("pub/camera", 5*time.Second)
	flowing := func(what string) {
		t.Helper()
		n := len(rt.snapshot())
		waitFor(t, 5*time.Second, what, func() bool { return len(rt.snapshot()) > n+20 })
	}
	flowing("video before the restarts")

	// "sub": the client asks, the SFU offers new credentials.
	sub.mu.Lock()
	oldSub := ufragOf(sub.sub.RemoteDescription())
	offers := sub.offers
	sub.mu.Unlock()
	sub.send(map[string]any{"type": "iceRestart"})
	waitFor(t, 5*time.Second, "an offer with new ICE credentials", func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.offers > offers && ufragOf(sub.sub.RemoteDescription()) != oldSub
	})
	flowing("video after the subscriber's ICE restart")

	// "pub": the client offers new credentials, the SFU answers with new
	// ones of its own.
	pub.mu.Lock()
	pc := pub.pub
	oldPub := ufragOf(pc.RemoteDescription())
	pub.mu.Unlock()
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	pub.send(map[string]any{"type": "offer", "pc": pcPub, "sdp": pc.LocalDescription().SDP,
		"sources": map[string]Source{video.trackID: SourceCamera}})
	select {
	case <-pub.answers:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the ICE-restart offer")
	}
	if got := ufragOf(pc.RemoteDescription()); got == oldPub || got == "" {
		t.Errorf("the SFU answered an ICE restart with the old credentials (%q)", got)
	}
	flowing("video after the publisher's ICE restart")
	if errs := sub.errorsSeen(); len(errs) > 0 {
		t.Errorf("errors: %+v", errs)
	}
	if errs := pub.errorsSeen(); len(errs) > 0 {
		t.Errorf("errors: %+v", errs)
	}
	checkIntact(t, rt, video)
}
