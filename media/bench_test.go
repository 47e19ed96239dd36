package media

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A 1.5 Mbit/s video stream in packets of about 1150 bytes on the wire.
const pktsPerSec1500k = 1_500_000 / 8 / 1150

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countWriter stands in for a subscriber's PeerConnection.
type countWriter struct{ n atomic.Int64 }

func (w *countWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.n.Add(1)
	return h.MarshalSize() + len(payload), nil
}

// BenchmarkFanout measures the SFU's own forwarding path for one video
// packet to N subscribers: the publisher's read-loop work (cache, keyframe
// check, N non-blocking queue offers) and each subscriber writer's (cache
// read, header rewrite, write). It stops at the TrackLocalWriter, so SRTP
// and the socket are not included; BenchmarkForwardPion includes them.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	s := &SFU{cfg: Config{KeyframeInterval: time.Hour}}
	owner := &participant{sfu: s, id: "pub"}
	up := &upTrack{key: "pub/camera", owner: owner, source: SourceCamera, kind: webrtc.RTPCodecTypeVideo,
		codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}, ck: codecVP8}
	up.downs.Store(&[]*downTrack{})
	l := &upLayer{up: up, cache: newPacketCache(videoCacheSize), created: time.Now()}
	up.layers[0].Store(l)
	var writers []*countWriter
	var peers []*downPeer
	for i := 0; i < n; i++ {
		p := newDownPeer(1024)
		p.ready.Store(true)
		peers = append(peers, p)
		dt := newDownTrack(up, p, nil)
		w := &countWriter{}
		writers = append(writers, w)
		dt.out, dt.ssrc, dt.pt = w, uint32(1000+i), 96
		dt.bound.Store(true)
		dt.target.Store(0)
		up.addDown(dt)
	}
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()
	key := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: vp8Payload(true, 1280, 720)}
	key.Payload = append(key.Payload, make([]byte, 1100)...)
	delta := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: vp8Payload(false, 0, 0)}
	delta.Payload = append(delta.Payload, make([]byte, 1100)...)
	kb, _ := key.Marshal()
	db, _ := delta.Marshal()
	l.forward(kb)
	waitWritten := func(want int64) {
		deadline := time.Now().Add(10 * time.Second)
		for _, w := range writers {
			for w.n.Load() < want {
				if time.Now().After(deadline) {
					b.Fatalf("writer stuck at %d of %d packets", w.n.Load(), want)
				}
				runtime.Gosched()
			}
		}
	}
	waitWritten(1)

	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 1; i <= b.N; i++ {
		binary.BigEndian.PutUint16(db[2:], uint16(i))
		binary.BigEndian.PutUint32(db[4:], uint32(i/4*3000))
		l.forward(db)
		if i%128 == 0 {
			// Stay well within the queues and the cache: this measures
			// the steady state, not what dropping costs.
			waitWritten(int64(i - 128))
		}
	}
	waitWritten(int64(b.N + 1))
	cpu := cpuTime() - cpu0
	b.StopTimer()
	perFwd := float64(cpu.Nanoseconds()) / float64(b.N*n)
	b.ReportMetric(perFwd, "cpu-ns/fwd-pkt")
	b.ReportMetric(1e9/(perFwd*pktsPerSec1500k), "subs/core@1.5Mbps")
}

// TestBenchChild is the client side of the process-separated benchmarks
// below: publishers and subscribers run in this child process so that the
// parent's CPU time is the SFU's alone. It does nothing in a normal run.
func TestBenchChild(t *testing.T) {
	mode := os.Getenv("MEDIA_BENCH_CHILD")
	if mode == "" {
		t.Skip("runs only as a benchmark's child process")
	}
	ts := &testServer{url: os.Getenv("MEDIA_BENCH_URL")}
	n, _ := strconv.Atoi(os.Getenv("MEDIA_BENCH_N"))
	secs, _ := strconv.Atoi(os.Getenv("MEDIA_BENCH_SECONDS"))
	iface := os.Getenv("MEDIA_BENCH_CLIENT_IFACE")
	var tracks []*recvTrack
	var senders []*synthSender
	switch mode {
	case "fanout":
		var subs []*testClient
		for i := 0; i < n; i++ {
			subs = append(subs, dialClient(t, ts, fmt.Sprintf("bench/sub%d/max=1000", i), clientOpts{countOnly: true, iface: iface}))
		}
		pub := dialClient(t, ts, "bench/pub/max=1000", clientOpts{iface: iface})
		senders = pub.publish(synthSpec{source: SourceCamera, bitrates: []int{1_500_000}, keyframeEvery: 60})
		for _, c := range subs {
			tracks = append(tracks, c.track("pub/camera", 30*time.Second))
		}
	case "room":
		var cs []*testClient
		for i := 0; i < n; i++ {
			cs = append(cs, dialClient(t, ts, fmt.Sprintf("bench/p%d", i), clientOpts{countOnly: true, iface: iface}))
		}
		for _, c := range cs {
			senders = append(senders, c.publish(synthSpec{source: SourceMic, level: 50}, synthSpec{source: SourceCamera, bitrates: []int{500_000}, keyframeEvery: 60})...)
		}
		for _, c := range cs {
			for j := 0; j < n; j++ {
				if id := fmt.Sprintf("p%d", j); id != c.id {
					tracks = append(tracks, c.track(id+"/mic", 30*time.Second), c.track(id+"/camera", 30*time.Second))
				}
			}
		}
	}
	for _, rt := range tracks {
		deadline := time.Now().Add(20 * time.Second)
		for rt.count.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // let layer allocation and rates settle
	sum := func() (p, bytes int64) {
		for _, rt := range tracks {
			p += rt.count.Load()
			bytes += rt.bytes.Load()
		}
		return
	}
	sent := func() (p int64) {
		for _, s := range senders {
			p += s.sentPkts.Load()
		}
		return
	}
	live := 0
	for _, rt := range tracks {
		if rt.count.Load() > 0 {
			live++
		}
	}
	if live < len(tracks) {
		t.Logf("only %d of %d tracks receiving", live, len(tracks))
	}
	p0, b0 := sum()
	s0 := sent()
	start := time.Now()
	fmt.Println("MEDIA_BENCH start")
	time.Sleep(time.Duration(secs) * time.Second)
	p1, b1 := sum()
	s1 := sent()
	if p1 == p0 {
		t.Errorf("nothing received in the window")
	}
	res, _ := json.Marshal(map[string]any{
		"received": p1 - p0, "bytes": b1 - b0, "sent": s1 - s0, "seconds": time.Since(start).Seconds(),
	})
	fmt.Println("MEDIA_BENCH result " + string(res))
}

type childResult struct {
	Received int64   `json:"received"`
	Bytes    int64   `json:"bytes"`
	Sent     int64   `json:"sent"`
	Seconds  float64 `json:"seconds"`
}

type sfuMeasure struct {
	cpu        time.Duration
	wall       time.Duration
	res        childResult
	heapInuse  uint64
	rss        int64
	goroutines int
}

// measureWithChild runs an SFU here and the clients in a child process,
// and measures this process between the child's start and result lines.
//
// By default both are on loopback. To run them on the two ends of a veth
// pair instead (the SFU's process inside a network namespace, the
// clients' in the host's; see bench/media_netns.sh), set
// MEDIA_BENCH_SFU_IP to the address of the namespace's end,
// MEDIA_BENCH_CLIENT_IFACE to the name of the host's end, and
// MEDIA_BENCH_CHILD_NETNS to a network namespace file for the child
// (/proc/1/ns/net: the host's), which it enters with nsenter.
func measureWithChild(b *testing.B, mode string, n, secs int) sfuMeasure {
	ip := "127.0.0.1"
	if v := os.Getenv("MEDIA_BENCH_SFU_IP"); v != "" {
		ip = v
	}
	// Loopback has room for every stream: the figures are the cost of
	// forwarding all of them, not of what congestion control would pause
	// when the clients' process starves the machine.
	ts := newTestServerOn(b, ip, func(c *Config) { c.InitialBitrate, c.LosslessBitrate = 100_000_000, 100_000_000 })
	args := []string{os.Args[0], "-test.run=^TestBenchChild$", "-test.count=1", "-test.v", "-test.timeout=5m"}
	if ns := os.Getenv("MEDIA_BENCH_CHILD_NETNS"); ns != "" {
		args = append([]string{"nsenter", "--net=" + ns, "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "MEDIA_BENCH_CHILD="+mode, "MEDIA_BENCH_URL="+ts.url,
		"MEDIA_BENCH_N="+strconv.Itoa(n), "MEDIA_BENCH_SECONDS="+strconv.Itoa(secs))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	var m sfuMeasure
	var cpu0 time.Duration
	var t0 time.Time
	sc := bufio.NewScanner(out)
	var log []string
	for sc.Scan() {
		line := sc.Text()
		log = append(log, line)
		switch {
		case line == "MEDIA_BENCH start":
			// Bandwidth estimation on a CPU-starved loopback would pause
			// video; this benchmark is about CPU per forwarded packet.
			for _, id := range ts.sfu.Rooms() {
				if r := ts.sfu.room(id); r != nil {
					for _, p := range r.members() {
						p.bwOverride.Store(100_000_000)
					}
				}
			}
			if path := os.Getenv("MEDIA_BENCH_CPUPROFILE"); path != "" {
				f, err := os.Create(path)
				if err == nil {
					_ = pprof.StartCPUProfile(f)
					defer func() { pprof.StopCPUProfile(); f.Close() }()
				}
			}
			cpu0, t0 = cpuTime(), time.Now()
		case strings.HasPrefix(line, "MEDIA_BENCH result "):
			m.cpu, m.wall = cpuTime()-cpu0, time.Since(t0)
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "MEDIA_BENCH result ")), &m.res); err != nil {
				b.Fatal(err)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			m.heapInuse = ms.HeapInuse
			m.rss = vmRSS()
			m.goroutines = runtime.NumGoroutine()
		}
	}
	if m.res.Seconds == 0 || m.res.Received == 0 {
		b.Fatalf("child failed:\n%s", strings.Join(log, "\n"))
	}
	return m
}

func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// BenchmarkForwardPion measures the whole SFU, pion included (interceptors,
// SRTP, sockets): one 1.5 Mbit/s VP8 publisher, N subscribers on loopback,
// clients in a child process. Run with -benchtime=1x; the figure is CPU of
// the SFU process per packet delivered to a subscriber.
func BenchmarkForwardPion(b *testing.B) {
	for _, n := range []int{10, 50, 100, 200} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			m := measureWithChild(b, "fanout", n, 10)
			perFwd := float64(m.cpu.Nanoseconds()) / float64(m.res.Received)
			b.ReportMetric(perFwd, "cpu-ns/fwd-pkt")
			b.ReportMetric(1e9/(perFwd*pktsPerSec1500k), "subs/core@1.5Mbps")
			b.ReportMetric(float64(m.res.Received)/m.res.Seconds, "fwd-pkts/s")
			b.ReportMetric(m.cpu.Seconds()/m.wall.Seconds()*100, "cpu-%")
			if m.res.Sent > 0 {
				b.ReportMetric(float64(m.res.Received)/float64(m.res.Sent*int64(n))*100, "delivered-%")
			}
		})
	}
}

// BenchmarkRoom10 is a 10-person meeting, everyone sending Opus and 500
// kbit/s VP8 and receiving everyone else, for 10 s: the SFU's CPU and
// memory. Run with -benchtime=1x.
func BenchmarkRoom10(b *testing.B) { benchRoom(b, 10) }

// BenchmarkRoomSize is BenchmarkRoom10 at other sizes: how the cost grows
// with the number of people (the forwarded streams grow as n*(n-1)).
func BenchmarkRoomSize(b *testing.B) {
	for _, n := range []int{2, 4, 8, 12, 16} {
		b.Run(fmt.Sprintf("people=%d", n), func(b *testing.B) { benchRoom(b, n) })
	}
}

func benchRoom(b *testing.B, n int) {
	const secs = 10
	m := measureWithChild(b, "room", n, secs)
	b.ReportMetric(m.cpu.Seconds(), "cpu-s")
	b.ReportMetric(m.cpu.Seconds()/m.wall.Seconds()*100, "cpu-%")
	b.ReportMetric(float64(m.res.Received)/m.res.Seconds, "fwd-pkts/s")
	b.ReportMetric(float64(m.res.Bytes*8)/m.res.Seconds/1e6, "fwd-Mbit/s")
	b.ReportMetric(float64(m.cpu.Nanoseconds())/float64(m.res.Received), "cpu-ns/fwd-pkt")
	b.ReportMetric(float64(m.heapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(m.rss)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(m.goroutines), "goroutines")
	if m.res.Sent > 0 {
		b.ReportMetric(float64(m.res.Received)/float64(m.res.Sent*int64(n-1))*100, "delivered-%")
	}
}
