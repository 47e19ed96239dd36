package media

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/rtcp"
)

// TestOrderDowns: the order allocate serves a subscriber's tracks in is
// stable whatever the map order, and puts flowing tracks first, so a
// budget short of all videos keeps the same ones rather than hopping.
func TestOrderDowns(t *testing.T) {
	t0 := time.Now()
	alice := &participant{id: "alice", joinedAt: t0}
	bob := &participant{id: "bob", joinedAt: t0.Add(time.Second)}
	carol := &participant{id: "carol", joinedAt: t0.Add(2 * time.Second)}
	mk := func(p *participant, s Source, cur int32) *downTrack {
		dt := &downTrack{up: &upTrack{owner: p, source: s}}
		dt.cur.Store(cur)
		return dt
	}
	aCam, bCam, bScreen, cCam := mk(alice, SourceCamera, -1), mk(bob, SourceCamera, -1), mk(bob, SourceScreen, -1), mk(carol, SourceCamera, 1)
	for _, in := range [][]*downTrack{{aCam, bCam, bScreen, cCam}, {cCam, bScreen, bCam, aCam}, {bScreen, aCam, cCam, bCam}} {
		orderDowns(in)
		if in[0] != cCam || in[1] != aCam || in[2] != bCam || in[3] != bScreen {
			t.Errorf("order: %s/%s %s/%s %s/%s %s/%s", in[0].up.owner.id, in[0].up.source, in[1].up.owner.id, in[1].up.source,
				in[2].up.owner.id, in[2].up.source, in[3].up.owner.id, in[3].up.source)
		}
	}

	// With room for one of two videos, allocation after allocation keeps
	// the same one.
	tracks := func(dts []*downTrack) []allocTrack {
		out := make([]allocTrack, len(dts))
		for i, dt := range dts {
			out[i] = allocTrack{maxLayer: 2, current: int(dt.cur.Load()), rates: [maxLayers]int{0, 120_000, 250_000}}
		}
		return out
	}
	aCam.cur.Store(-1)
	cCam.cur.Store(-1)
	var kept *downTrack
	for i := 0; i < 20; i++ {
		dts := []*downTrack{aCam, cCam}
		if i%2 == 1 {
			dts = []*downTrack{cCam, aCam}
		}
		orderDowns(dts)
		got := allocate(150_000, tracks(dts))
		for j, dt := range dts {
			if got[j] >= 0 {
				if kept != nil && kept != dt {
					t.Fatalf("allocation %d moved the one video from %s to %s", i, kept.up.owner.id, dt.up.owner.id)
				}
				kept = dt
				dt.cur.Store(int32(got[j]))
			} else {
				dt.cur.Store(-1)
			}
		}
	}
}

// fakeEstimator is a congestion controller whose estimate and statistics
// a test sets.
type fakeEstimator struct {
	rate  int
	stats map[string]any
}

func (f *fakeEstimator) AddStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return w
}
func (f *fakeEstimator) WriteRTCP([]rtcp.Packet, interceptor.Attributes) error { return nil }
func (f *fakeEstimator) GetTargetBitrate() int                                 { return f.rate }
func (f *fakeEstimator) OnTargetBitrateChange(func(int))                       {}
func (f *fakeEstimator) GetStats() map[string]any                              { return f.stats }
func (f *fakeEstimator) Close() error                                          { return nil }

// TestLosslessFloor: a delay-based estimate below Config.LosslessBitrate
// does not cut a subscriber that loses no packets; loss does, for
// lossHold after the last sign of it.
func TestLosslessFloor(t *testing.T) {
	cfg, err := Config{Authorizer: AuthorizerFunc(nil)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	p := &participant{sfu: &SFU{cfg: cfg}}
	est := &fakeEstimator{rate: 200_000, stats: map[string]any{
		"averageLoss": 0.0, "lossTargetBitrate": 200_000, "delayTargetBitrate": 200_000}}
	var e cc.BandwidthEstimator = est
	p.estimator.Store(&e)
	now := time.Now()
	if b := p.budget(now); b != 1_000_000 {
		t.Errorf("no loss: budget %d, want the 1 Mbit/s floor", b)
	}
	est.rate = 3_000_000
	if b := p.budget(now); b != 3_000_000 {
		t.Errorf("estimate above the floor: budget %d", b)
	}
	// Loss beyond 10%: the plain estimate, now and for lossHold.
	est.rate = 200_000
	est.stats = map[string]any{"averageLoss": 0.15, "lossTargetBitrate": 150_000, "delayTargetBitrate": 200_000}
	if b := p.budget(now); b != 200_000 {
		t.Errorf("losing packets: budget %d, want the estimate", b)
	}
	est.stats = map[string]any{"averageLoss": 0.0, "lossTargetBitrate": 200_000, "delayTargetBitrate": 200_000}
	if b := p.budget(now.Add(lossHold / 2)); b != 200_000 {
		t.Errorf("just after loss: budget %d, want the estimate", b)
	}
	if b := p.budget(now.Add(lossHold + time.Second)); b != 1_000_000 {
		t.Errorf("long after loss: budget %d, want the floor", b)
	}
	// Loss GCC itself only holds at (2% to 10%) leaves the floor.
	est.stats = map[string]any{"averageLoss": 0.05, "lossTargetBitrate": 120_000, "delayTargetBitrate": 200_000}
	if b := p.budget(now.Add(time.Minute)); b != 1_000_000 {
		t.Errorf("5%% loss: budget %d, want the floor", b)
	}
	// Turned off.
	p.sfu.cfg.LosslessBitrate = -1
	p.lossUntil.Store(0)
	est.stats = map[string]any{}
	if b := p.budget(now.Add(time.Hour)); b != 200_000 {
		t.Errorf("floor off: budget %d", b)
	}
}
