package media

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// BenchmarkJanusVideoRoom drives Debian's janus (its videoroom plugin)
// with the load of BenchmarkForwardPion: one 1.5 Mbit/s VP8 publisher and
// N subscribers, pion clients in this process, and measures the janus
// process's CPU time (from /proc) per packet delivered. It runs only when
// PARLEY_JANUS_URL (the REST endpoint, e.g. http://10.77.0.2:18088/janus)
// and PARLEY_JANUS_PID are set; bench/media_netns.sh starts janus in a
// network namespace and runs it (see BENCHMARKS.md). Run with
// -benchtime=1x.
func BenchmarkJanusVideoRoom(b *testing.B) {
	url, pid := os.Getenv("PARLEY_JANUS_URL"), os.Getenv("PARLEY_JANUS_PID")
	if url == "" || pid == "" {
		b.Skip("set PARLEY_JANUS_URL and PARLEY_JANUS_PID to measure a running janus")
	}
	ns := []int{10, 50, 100}
	if s := os.Getenv("PARLEY_JANUS_SUBS"); s != "" {
		ns = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			ns = append(ns, n)
		}
	}
	for _, n := range ns {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchJanus(b, url, pid, n, 10) })
	}
}

// janusSession is one Janus API session over REST, with long-poll events.
type janusSession struct {
	b      testing.TB
	url    string
	id     int64
	events chan map[string]any
	done   chan struct{}
}

func janusPost(b testing.TB, url string, req map[string]any) map[string]any {
	req["transaction"] = strconv.FormatUint(rand.Uint64(), 36)
	body, _ := json.Marshal(req)
	res, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatalf("janus %v: %v", req["janus"], err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		b.Fatalf("janus %v: %v", req["janus"], err)
	}
	if out["janus"] == "error" {
		b.Fatalf("janus %v: %v", req["janus"], out["error"])
	}
	return out
}

func newJanusSession(b testing.TB, url string) *janusSession {
	out := janusPost(b, url, map[string]any{"janus": "create"})
	id := int64(out["data"].(map[string]any)["id"].(float64))
	s := &janusSession{b: b, url: url + "/" + strconv.FormatInt(id, 10), id: id,
		events: make(chan map[string]any, 64), done: make(chan struct{})}
	go s.poll()
	return s
}

func (s *janusSession) poll() {
	for {
		select {
		case <-s.done:
			return
		default:
		}
		res, err := http.Get(s.url + "?maxev=10")
		if err != nil {
			return
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var evs []map[string]any
		if json.Unmarshal(raw, &evs) != nil {
			var one map[string]any
			if json.Unmarshal(raw, &one) == nil {
				evs = []map[string]any{one}
			}
		}
		for _, ev := range evs {
			if ev["janus"] == "event" {
				s.events <- ev
			}
		}
	}
}

func (s *janusSession) attach() int64 {
	out := janusPost(s.b, s.url, map[string]any{"janus": "attach", "plugin": "janus.plugin.videoroom"})
	return int64(out["data"].(map[string]any)["id"].(float64))
}

// message sends a plugin request; synchronous requests return their
// answer, asynchronous ones (with jsep) their event.
func (s *janusSession) message(handle int64, body map[string]any, jsep *webrtc.SessionDescription) map[string]any {
	req := map[string]any{"janus": "message", "body": body}
	if jsep != nil {
		req["jsep"] = map[string]any{"type": jsep.Type.String(), "sdp": jsep.SDP}
	}
	out := janusPost(s.b, s.url+"/"+strconv.FormatInt(handle, 10), req)
	if out["janus"] == "success" {
		return out
	}
	for {
		select {
		case ev := <-s.events:
			if int64(ev["sender"].(float64)) == handle {
				return ev
			}
		case <-time.After(20 * time.Second):
			s.b.Fatalf("janus: no event for %v", body)
		}
	}
}

// trickleDone tells janus a handle's description held all its candidates.
func (s *janusSession) trickleDone(handle int64) {
	janusPost(s.b, s.url+"/"+strconv.FormatInt(handle, 10), map[string]any{"janus": "trickle", "candidate": map[string]any{"completed": true}})
}

func (s *janusSession) close() {
	close(s.done)
	janusPost(s.b, s.url, map[string]any{"janus": "destroy"})
}

func jsepOf(ev map[string]any) webrtc.SessionDescription {
	j, _ := ev["jsep"].(map[string]any)
	if j == nil {
		return webrtc.SessionDescription{}
	}
	var sd webrtc.SessionDescription
	sd.SDP, _ = j["sdp"].(string)
	if j["type"] == "offer" {
		sd.Type = webrtc.SDPTypeOffer
	} else {
		sd.Type = webrtc.SDPTypeAnswer
	}
	return sd
}

// janusClientAPI is pion with VP8, as a client. Janus (libnice) gathers no
// candidates on the loopback interface, so it runs in a network namespace
// of its own joined to this one by a veth pair (bench/media_netns.sh):
// PARLEY_JANUS_URL is then on the namespace's end, and
// MEDIA_BENCH_CLIENT_IFACE names this end, the one interface the clients
// gather on; janus answers with the namespace's end only.
func janusClientAPI(b testing.TB) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}},
	}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		b.Fatal(err)
	}
	se := webrtc.SettingEngine{LoggerFactory: quietPion{}}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if iface := os.Getenv("MEDIA_BENCH_CLIENT_IFACE"); iface != "" {
		se.SetInterfaceFilter(func(name string) bool { return name == iface })
	} else {
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
}

func gathered(b testing.TB, pc *webrtc.PeerConnection, sd webrtc.SessionDescription) webrtc.SessionDescription {
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		b.Fatal(err)
	}
	<-done
	return *pc.LocalDescription()
}

func procCPU(b testing.TB, pid string) time.Duration {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

func procRSS(pid string) int64 {
	raw, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func benchJanus(b *testing.B, url, pid string, n, secs int) {
	api := janusClientAPI(b)
	s := newJanusSession(b, url)
	defer s.close()
	room := 100000 + rand.IntN(1000000)
	admin := s.attach()
	s.message(admin, map[string]any{"request": "create", "room": room, "publishers": 2, "bitrate": 0,
		"videocodec": "vp8", "audiocodec": "opus"}, nil)
	defer s.message(admin, map[string]any{"request": "destroy", "room": room}, nil)

	// The publisher.
	pubPC, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer pubPC.Close()
	track, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera", "pub")
	sender, err := pubPC.AddTrack(track)
	if err != nil {
		b.Fatal(err)
	}
	var plis atomic.Int64
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if strings.Contains(fmt.Sprintf("%T", p), "PictureLoss") || strings.Contains(fmt.Sprintf("%T", p), "FullIntra") {
					plis.Add(1)
				}
			}
		}
	}()
	offer, _ := pubPC.CreateOffer(nil)
	offer = gathered(b, pubPC, offer)
	pubHandle := s.attach()
	ev := s.message(pubHandle, map[string]any{"request": "joinandconfigure", "room": room, "ptype": "publisher",
		"display": "pub", "audio": false, "video": true}, &offer)
	s.trickleDone(pubHandle)
	if err := pubPC.SetRemoteDescription(jsepOf(ev)); err != nil {
		b.Fatalf("publisher answer: %v (%v)", err, ev)
	}
	if os.Getenv("PARLEY_JANUS_DEBUG") != "" {
		b.Logf("offer to janus:\n%s\njanus answer:\n%s", offer.SDP, jsepOf(ev).SDP)
	}
	pd, _ := ev["plugindata"].(map[string]any)["data"].(map[string]any)
	feed := pd["id"]

	var sentPkts atomic.Int64
	stop := make(chan struct{})
	go func() {
		// 1.5 Mbit/s: 25 frames a second of 7.5 packets of about 1150
		// bytes, a keyframe every 60 frames or when asked.
		key := append(vp8Payload(true, 1280, 720), make([]byte, 1100)...)
		delta := append(vp8Payload(false, 0, 0), make([]byte, 1100)...)
		seq := uint16(rand.Uint32())
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		lastPLI := int64(0)
		for frame := 0; ; frame++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			isKey := frame%60 == 0
			if p := plis.Load(); p != lastPLI {
				isKey, lastPLI = true, p
			}
			per := pktsPerSec1500k / 25
			if frame%2 == 0 {
				per++
			}
			for i := 0; i < per; i++ {
				payload := delta
				if isKey && i == 0 {
					payload = key
				}
				binary.BigEndian.PutUint16(payload[2:], uint16(frame)|0x8000)
				pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq,
					Timestamp: uint32(frame * 3600), Marker: i == per-1}, Payload: payload}
				seq++
				if track.WriteRTP(&pkt) == nil {
					sentPkts.Add(1)
				}
			}
		}
	}()
	defer close(stop)

	// The subscribers.
	var counts []*atomic.Int64
	for i := 0; i < n; i++ {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		defer pc.Close()
		c := new(atomic.Int64)
		counts = append(counts, c)
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				c.Add(1)
			}
		})
		h := s.attach()
		var ev map[string]any
		for try := 0; ; try++ {
			// The feed exists once the publisher's connection is up.
			ev = s.message(h, map[string]any{"request": "join", "room": room, "ptype": "subscriber",
				"streams": []map[string]any{{"feed": feed}}}, nil)
			if ev["jsep"] != nil || try == 100 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := pc.SetRemoteDescription(jsepOf(ev)); err != nil {
			b.Fatalf("subscriber offer: %v (%v)", err, ev)
		}
		answer, _ := pc.CreateAnswer(nil)
		answer = gathered(b, pc, answer)
		s.message(h, map[string]any{"request": "start", "room": room}, &answer)
		s.trickleDone(h)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range counts {
		for c.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	sum := func() (t int64) {
		for _, c := range counts {
			t += c.Load()
		}
		return
	}
	live := 0
	for _, c := range counts {
		if c.Load() > 0 {
			live++
		}
	}
	r0, s0, cpu0, t0 := sum(), sentPkts.Load(), procCPU(b, pid), time.Now()
	time.Sleep(time.Duration(secs) * time.Second)
	r1, s1, cpu1, wall := sum(), sentPkts.Load(), procCPU(b, pid), time.Since(t0)
	recv := r1 - r0
	if recv == 0 {
		b.Fatalf("janus delivered nothing (%d of %d subscribers ever received)", live, n)
	}
	cpu := cpu1 - cpu0
	perFwd := float64(cpu.Nanoseconds()) / float64(recv)
	b.ReportMetric(perFwd, "cpu-ns/fwd-pkt")
	b.ReportMetric(1e9/(perFwd*pktsPerSec1500k), "subs/core@1.5Mbps")
	b.ReportMetric(float64(recv)/wall.Seconds(), "fwd-pkts/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds()*100, "cpu-%")
	b.ReportMetric(float64(recv)/float64((s1-s0)*int64(n))*100, "delivered-%")
	b.ReportMetric(float64(procRSS(pid))/(1<<20), "rss-MiB")
	b.ReportMetric(float64(live), "subs-live")
}
