//go:build browser

package browser

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/meeting"
)

// cookieAuth is the host's webmail session, faked with a cookie.
type cookieAuth struct{ *memdir.Dir }

func (cookieAuth) AuthenticateRequest(r *http.Request) (string, error) {
	c, err := r.Cookie("e2e_user")
	if err != nil {
		return "", errors.New("no session")
	}
	return c.Value, nil
}

// TestMediaInChromium runs media.mjs: three people in one meeting see and
// hear each other through Parley's SFU, one shares a (canvas) screen, the
// organizer mutes one, stops another's video, records, and removes one.
// The recording must then be a meeting file that ffprobe reads as WebM
// with audio and video of the right length.
func TestMediaInChromium(t *testing.T) {
	requireBrowser(t)
	ffprobe, err := exec.LookPath("ffprobe")
	need(t, err == nil, "ffprobe is missing: apt-get install -y ffmpeg")

	d := memdir.New()
	for _, u := range []struct{ addr, name string }{
		{"alice@" + domain, "Alice Liddell"}, {"bob@" + domain, "Bob Builder"}, {"carol@" + domain, "Carol Danvers"},
	} {
		d.AddUser(u.addr, u.name, "pw", true)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// http on 127.0.0.1 is a secure context: the camera is allowed.
	base := "http://" + ln.Addr().String() + "/parley"
	srv, err := parley.New(parley.Config{
		Domains: []string{domain}, Directory: d, Authenticator: cookieAuth{d},
		AllowUnencrypted: true, DataDir: t.TempDir(), PublicURL: base,
		// The SFU listens on 127.0.0.1 only (a free port, so tests can
		// run side by side); media.mjs starts Chromium with
		// --allow-loopback-in-peer-connection, so it gathers a loopback
		// candidate too, and checks that the selected candidate pairs
		// are 127.0.0.1 at both ends.
		MediaUDPAddr: "127.0.0.1:0",
		Logger:       mediaLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/parley/", http.StripPrefix("/parley", srv.Handler()))
	hs := httptest.NewUnstartedServer(mux)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	defer hs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	alice := jid.MustParse("alice@" + domain)
	// Recording is not allowed yet: the organizer allows it mid-meeting.
	title := "Design review"
	m, err := srv.Meetings().Create(ctx, alice, meeting.Change{Title: &title})
	if err != nil {
		t.Fatal(err)
	}

	shots, _ := filepath.Abs("screenshots")
	os.MkdirAll(shots, 0o755)
	cmd := exec.CommandContext(ctx, "node", "media.mjs")
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "BASE_URL="+base, "LINK="+m.Link, "SCREENSHOTS="+shots, "CHROMIUM="+chromium)
	output := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = output, output
	start := time.Now()
	err = cmd.Run()
	t.Logf("media.mjs (%s):\n%s", time.Since(start).Round(time.Millisecond), output)
	if err != nil {
		t.Fatalf("browser scenario failed: %v", err)
	}

	var window float64
	for _, l := range strings.Split(output.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "RECORDING_WINDOW "); ok {
			window, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if window < 5 {
		t.Fatalf("media.mjs gave no recording window")
	}

	// The recording: one file per participant with their mic and camera,
	// one for the screen share, all in the meeting's files.
	fs, err := srv.Meetings().Files(ctx, meeting.Access{User: alice}, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var cams, screens int
	for _, f := range fs {
		if !strings.HasSuffix(f.Name, ".webm") || f.ContentType != "video/webm" {
			t.Errorf("a file that is not a recording: %+v", f)
			continue
		}
		_, rc, err := srv.Meetings().OpenFile(ctx, meeting.Access{User: alice}, m.ID, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "rec.webm")
		out, _ := os.Create(path)
		io.Copy(out, rc)
		rc.Close()
		out.Close()
		probe := probeWebM(t, ffprobe, path)
		t.Logf("%s: %d bytes, %s, %.2f s, streams %v", f.Name, f.Size, probe.format, probe.duration, probe.streams)
		if !strings.Contains(probe.format, "webm") && !strings.Contains(probe.format, "matroska") {
			t.Errorf("%s: format %q", f.Name, probe.format)
		}
		// Recorded for 5 s and a little more (media.mjs: its window is
		// from the click on Record to the indicator going out, longer on a
		// loaded machine); each file starts at its video's first keyframe,
		// which a loaded browser's screen-share encoder can be seconds
		// late to send: the camera-and-mic files must cover most of the
		// window, the screen's at least a second.
		least := 3.0
		if strings.HasSuffix(f.Name, " screen.webm") {
			least = 1
		}
		if probe.duration < least || probe.duration > window+1 {
			t.Errorf("%s: duration %.2f s, want %.0f to %.1f", f.Name, probe.duration, least, window+1)
		}
		if strings.HasSuffix(f.Name, " screen.webm") {
			screens++
			if probe.streams["video"] != "vp8" && probe.streams["video"] != "vp9" {
				t.Errorf("%s: streams %v, want video", f.Name, probe.streams)
			}
			continue
		}
		cams++
		if probe.streams["audio"] != "opus" || (probe.streams["video"] != "vp8" && probe.streams["video"] != "vp9") {
			t.Errorf("%s: streams %v, want opus audio and vp8/vp9 video", f.Name, probe.streams)
		}
	}
	if cams != 3 || screens != 1 {
		t.Errorf("recordings: %d with camera and mic, %d screen shares; want 3 and 1 (files %+v)", cams, screens, fs)
	}
}

type probeResult struct {
	format   string
	duration float64
	streams  map[string]string // codec_type -> codec_name
}

func probeWebM(t *testing.T, ffprobe, path string) probeResult {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var j struct {
		Format struct {
			Name     string `json:"format_name"`
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Type  string `json:"codec_type"`
			Codec string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	r := probeResult{format: j.Format.Name, streams: map[string]string{}}
	r.duration, _ = strconv.ParseFloat(j.Format.Duration, 64)
	for _, s := range j.Streams {
		r.streams[s.Type] = s.Codec
	}
	// A muxer without cues may leave the duration out: decode to find it.
	if r.duration == 0 {
		out, err := exec.Command(ffprobe, "-v", "error", "-count_packets", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
		if err == nil {
			for _, l := range strings.Fields(string(out)) {
				if v, err := strconv.ParseFloat(strings.TrimSuffix(l, ","), 64); err == nil && v > r.duration {
					r.duration = v
				}
			}
		}
	}
	return r
}

// mediaLogger collects the server's log and shows it when the test fails.
func mediaLogger(t *testing.T) *slog.Logger {
	buf := new(lockedBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- server log ----\n%s---- end of server log ----", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
