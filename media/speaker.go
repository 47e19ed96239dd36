package media

import "time"

// Active-speaker tuning. Loudness is 127 minus the RFC 6464 level, so 0 is
// silence and 127 is 0 dBov; speech sits around -20 to -45 dBov and a quiet
// room's noise floor below -60.
const (
	speakerThreshold = 127 - 60    // smoothed loudness that counts as speaking
	speakerMargin    = 1.2         // a challenger must be this much louder
	speakerDwell     = time.Second // the shortest time a speaker keeps the floor
	speakerAlpha     = 0.5         // weight of the newest tick in the smoothing
	speakerTick      = 250 * time.Millisecond
)

// speakerDetector turns per-tick loudness into active-speaker changes. It
// is owned by the room goroutine.
type speakerDetector struct {
	smooth  map[string]float64
	current string
	since   time.Time
}

// update folds in this tick's mean loudness per participant (absent means
// silent) and returns the active speaker and whether it changed. The
// floor goes to the loudest participant above the threshold, held for at
// least speakerDwell unless the holder falls silent, and taken over only
// by someone clearly louder, so it does not flicker between two people
// talking at once.
func (d *speakerDetector) update(now time.Time, loud map[string]float64) (string, bool) {
	if d.smooth == nil {
		d.smooth = map[string]float64{}
	}
	for id := range d.smooth {
		if _, ok := loud[id]; !ok {
			loud[id] = 0
		}
	}
	best, bestV := "", 0.0
	for id, v := range loud {
		s := d.smooth[id]*(1-speakerAlpha) + v*speakerAlpha
		if s < 0.5 && v == 0 {
			delete(d.smooth, id)
			s = 0
		} else {
			d.smooth[id] = s
		}
		if s > bestV || (s == bestV && id < best) {
			best, bestV = id, s
		}
	}
	if bestV < speakerThreshold || best == d.current {
		return d.current, false
	}
	cur := d.smooth[d.current]
	if d.current != "" && cur >= speakerThreshold {
		if now.Sub(d.since) < speakerDwell || bestV < cur*speakerMargin {
			return d.current, false
		}
	}
	d.current, d.since = best, now
	return best, true
}

// forget drops a participant who left; if they held the floor it is free.
func (d *speakerDetector) forget(id string) bool {
	delete(d.smooth, id)
	if d.current == id {
		d.current = ""
		return true
	}
	return false
}
