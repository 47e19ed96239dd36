package media

import "sort"

// allocTrack describes one video track offered to a subscriber, for
// allocate.
type allocTrack struct {
	screen  bool // screen share: served first
	speaker bool // the active speaker's camera: served next
	// rates[i] is the bitrate of layer i in bits per second; 0 means the
	// layer is not available now.
	rates [maxLayers]int
	// maxLayer is the subscriber's cap (display size); -1 paused.
	maxLayer int
	// current is the layer being forwarded, -1 none. Moving up from it
	// needs headroom, so an estimate wobbling around a layer's rate does
	// not make the subscriber flap between layers and keyframes.
	current int
}

// upgradeHeadroom is the factor by which a layer above the current one
// must fit in the budget.
const upgradeHeadroom = 1.15

// allocate picks, for each track, the simulcast layer to forward within
// budget (bits per second, audio already deducted), or -1 to pause it.
//
// Tracks are served in priority order, screen shares first, then the
// active speaker's camera, then the rest in their given order; first each
// gets its lowest layer, then each in turn is raised as far as the budget
// left allows. The first track always keeps at least its lowest layer:
// pausing everything would leave the congestion controller nothing to
// measure and it could never discover that bandwidth came back. That is
// also how a screen share is preferred over cameras when bandwidth is
// short: cameras lose their layers, and then their video, before it does.
func allocate(budget int, tracks []allocTrack) []int {
	out := make([]int, len(tracks))
	order := make([]int, len(tracks))
	for i := range order {
		order[i] = i
		out[i] = -1
	}
	prio := func(t allocTrack) int {
		switch {
		case t.screen:
			return 0
		case t.speaker:
			return 1
		}
		return 2
	}
	sort.SliceStable(order, func(a, b int) bool { return prio(tracks[order[a]]) < prio(tracks[order[b]]) })

	lowest := func(t allocTrack) int {
		for l := 0; l <= t.maxLayer && l < maxLayers; l++ {
			if t.rates[l] > 0 {
				return l
			}
		}
		return -1
	}
	left := budget
	first := true
	for _, i := range order {
		t := tracks[i]
		l := lowest(t)
		if l < 0 {
			continue
		}
		if t.rates[l] <= left || first {
			out[i] = l
			left -= t.rates[l]
		}
		first = false
	}
	for _, i := range order {
		t := tracks[i]
		if out[i] < 0 {
			continue
		}
		for l := min(t.maxLayer, maxLayers-1); l > out[i]; l-- {
			if t.rates[l] == 0 {
				continue
			}
			need := t.rates[l] - t.rates[out[i]]
			if l > t.current {
				need = int(float64(t.rates[l])*upgradeHeadroom) - t.rates[out[i]]
			}
			if need <= left {
				left -= t.rates[l] - t.rates[out[i]]
				out[i] = l
				break
			}
		}
	}
	return out
}

// layerForSize is the smallest layer whose frames cover a display of w x h
// pixels, given the layers' frame sizes (zero when unknown). Unknown sizes
// are assumed to be the usual quarter, half and full 1280x720.
func layerForSize(w, h int, sizes [maxLayers][2]int, present [maxLayers]bool) int {
	if w <= 0 && h <= 0 {
		return maxLayers - 1
	}
	best := -1
	for l := 0; l < maxLayers; l++ {
		if !present[l] {
			continue
		}
		lw, lh := sizes[l][0], sizes[l][1]
		if lw == 0 || lh == 0 {
			lw, lh = 1280>>(maxLayers-1-l), 720>>(maxLayers-1-l)
		}
		best = l
		// A layer within 10% of the display is sharp enough.
		if lw*10 >= w*9 && lh*10 >= h*9 {
			return l
		}
	}
	if best < 0 {
		return maxLayers - 1
	}
	return best
}

// probeNeed says how much more bandwidth, in bits per second, the first
// track (in allocate's priority order) that is below what its subscriber
// wants would need for its next layer, and which track that is; 0 and -1
// when every track has what it wants. budget and targets are allocate's.
func probeNeed(budget int, tracks []allocTrack, targets []int) (int, int) {
	used := 0
	for i, t := range tracks {
		if targets[i] >= 0 {
			used += t.rates[targets[i]]
		}
	}
	left := budget - used
	order := make([]int, len(tracks))
	for i := range order {
		order[i] = i
	}
	prio := func(t allocTrack) int {
		switch {
		case t.screen:
			return 0
		case t.speaker:
			return 1
		}
		return 2
	}
	sort.SliceStable(order, func(a, b int) bool { return prio(tracks[order[a]]) < prio(tracks[order[b]]) })
	for _, i := range order {
		t := tracks[i]
		cur := targets[i]
		for l := cur + 1; l <= min(t.maxLayer, maxLayers-1); l++ {
			if t.rates[l] == 0 {
				continue
			}
			need := int(float64(t.rates[l]) * upgradeHeadroom)
			if cur >= 0 {
				need -= t.rates[cur]
			}
			if need > left {
				return need - left, i
			}
			break
		}
	}
	return 0, -1
}
