package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/jid"
)

func TestRoundTrip5MiB(t *testing.T) {
	e := newEnv(t, Config{})
	data := randomBytes(t, 5<<20)
	s := e.upload(alice, "holiday video.bin", "application/octet-stream", data)

	if !strings.HasPrefix(s.PutURL, e.srv.URL+"/parley/files/upload/") || !strings.HasPrefix(s.GetURL, e.srv.URL+"/parley/files/file/") {
		t.Fatalf("slot URLs not under BaseURL: %+v", s)
	}
	if !strings.HasSuffix(s.GetURL, "/holiday%20video.bin") {
		t.Errorf("GetURL %q does not keep the name", s.GetURL)
	}
	resp, body := e.get(s.GetURL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if !bytes.Equal(body, data) {
		t.Fatalf("downloaded %d bytes differ from the %d uploaded", len(body), len(data))
	}
	f, err := e.svc.File(context.Background(), s.FileID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(data)) || f.Owner != "alice@example.com" || f.Name != "holiday video.bin" {
		t.Errorf("record = %+v", f)
	}
	if got := resp.Header.Get("ETag"); got != `"`+f.SHA256+`"` {
		t.Errorf("ETag = %q", got)
	}
	// random binary is never shown inline
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("Content-Disposition = %q", cd)
	}
}

func TestTokensAreLongAndDistinct(t *testing.T) {
	e := newEnv(t, Config{})
	seen := map[string]bool{}
	for range 20 {
		s, err := e.svc.Slot(context.Background(), alice, "a.txt", 1, "")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(s.PutURL)
		parts := strings.Split(u.Path, "/")
		token := parts[len(parts)-2]
		if len(token) < 52 || len(s.FileID) != 32 { // 256 and 160 bits of base32
			t.Fatalf("token %q / id %q too short", token, s.FileID)
		}
		if seen[token] || seen[s.FileID] || strings.Contains(s.PutURL, s.FileID) {
			t.Fatal("token or id repeated, or the id is part of the PUT URL")
		}
		seen[token], seen[s.FileID] = true, true
	}
}

func TestSlotTooLarge(t *testing.T) {
	e := newEnv(t, Config{MaxFileSize: 1000})
	_, err := e.svc.Slot(context.Background(), alice, "big.zip", 1001, "")
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Max != 1000 {
		t.Fatalf("err = %v, want *TooLargeError{1000}", err)
	}
	if _, err := e.svc.Slot(context.Background(), alice, "ok.zip", 1000, ""); err != nil {
		t.Fatalf("exactly the limit: %v", err)
	}
	if got := e.svc.MaxFileSize(); got != 1000 {
		t.Errorf("MaxFileSize = %d", got)
	}
	if e2 := newEnv(t, Config{}); e2.svc.MaxFileSize() != 100<<20 {
		t.Errorf("default MaxFileSize = %d", e2.svc.MaxFileSize())
	}
}

func TestPutSizeMismatch(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		body int
		want int
	}{
		{"more bytes than the slot", 101, http.StatusRequestEntityTooLarge},
		{"fewer bytes than the slot", 99, http.StatusBadRequest},
	} {
		s, err := e.svc.Slot(ctx, alice, "f.dat", 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := e.put(s, "", make([]byte, tc.body)); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
		if _, err := e.svc.File(ctx, s.FileID); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: a record exists after the refused PUT (%v)", tc.name, err)
		}
		if resp, _ := e.get(s.GetURL); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: GET after refused PUT: %d", tc.name, resp.StatusCode)
		}
	}
	// a chunked body has no Content-Length to check
	s, _ := e.svc.Slot(ctx, alice, "f.dat", 100, "")
	req, _ := http.NewRequest(http.MethodPut, s.PutURL, struct{ *bytes.Reader }{bytes.NewReader(make([]byte, 100))})
	req.ContentLength = -1
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusLengthRequired {
		t.Errorf("chunked PUT: %d, want 411", resp.StatusCode)
	}
	if u, _ := e.svc.store.Usage(ctx, "alice@example.com"); u != 0 {
		t.Errorf("usage after refused uploads = %d", u)
	}
}

func TestPutContentTypeMustMatch(t *testing.T) {
	e := newEnv(t, Config{})
	s, err := e.svc.Slot(context.Background(), alice, "a.jpg", 3, "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.put(s, "image/png", []byte("abc")); got != http.StatusUnsupportedMediaType {
		t.Errorf("wrong type: %d", got)
	}
	s, _ = e.svc.Slot(context.Background(), alice, "a.jpg", 3, "image/jpeg")
	if got := e.put(s, "IMAGE/JPEG; charset=whatever", []byte("abc")); got != http.StatusCreated {
		t.Errorf("same media type with parameters: %d", got)
	}
	if _, err := e.svc.Slot(context.Background(), alice, "a.jpg", 3, "not a type"); !errors.Is(err, ErrInvalid) {
		t.Errorf("garbage content type: %v", err)
	}
}

func TestSlotExpiredAndReused(t *testing.T) {
	e := newEnv(t, Config{SlotTTL: time.Minute})
	ctx := context.Background()
	s, err := e.svc.Slot(ctx, alice, "a.txt", 5, "")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Expires.Equal(e.clock.Now().Add(time.Minute)) {
		t.Errorf("Expires = %v", s.Expires)
	}
	e.clock.Advance(time.Minute)
	if got := e.put(s, "", []byte("hello")); got != http.StatusGone {
		t.Errorf("expired slot: %d, want 410", got)
	}
	if got := e.put(s, "", []byte("hello")); got != http.StatusNotFound {
		t.Errorf("expired slot again: %d, want 404", got)
	}

	s = e.upload(alice, "b.txt", "", []byte("hello"))
	if got := e.put(s, "", []byte("HELLO")); got != http.StatusNotFound {
		t.Errorf("reused slot: %d, want 404", got)
	}
	_, body := e.get(s.GetURL)
	if string(body) != "hello" {
		t.Errorf("content after reuse attempt = %q", body)
	}

	// a failed PUT uses the slot up too
	s, _ = e.svc.Slot(ctx, alice, "c.txt", 5, "")
	e.put(s, "", []byte("hi"))
	if got := e.put(s, "", []byte("hello")); got != http.StatusNotFound {
		t.Errorf("slot after failed PUT: %d, want 404", got)
	}

	// made-up tokens
	for _, p := range []string{"/upload/aaaa/x", "/upload/" + strings.Repeat("a", 52) + "/x", "/upload/../file/x"} {
		req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/parley/files"+p, strings.NewReader("x"))
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Errorf("PUT %s: %d", p, resp.StatusCode)
		}
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, Config{UserQuota: 1000, SlotTTL: time.Minute})
	ctx := context.Background()
	e.upload(alice, "a.bin", "", make([]byte, 600))
	if _, err := e.svc.Slot(ctx, alice, "b.bin", 401, ""); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	// an unused slot holds its bytes until it expires
	s, err := e.svc.Slot(ctx, alice, "b.bin", 400, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Slot(ctx, alice, "c.bin", 1, ""); !errors.Is(err, ErrQuota) {
		t.Fatalf("quota with a pending slot: %v", err)
	}
	// other users have their own quota
	if _, err := e.svc.Slot(ctx, bob, "c.bin", 1000, ""); err != nil {
		t.Fatalf("bob: %v", err)
	}
	e.clock.Advance(2 * time.Minute)
	if got := e.put(s, "", make([]byte, 400)); got != http.StatusGone {
		t.Fatalf("expired: %d", got)
	}
	if _, err := e.svc.Slot(ctx, alice, "c.bin", 400, ""); err != nil {
		t.Fatalf("after the pending slot expired: %v", err)
	}
	if u, _ := e.svc.store.Usage(ctx, "alice@example.com"); u != 600 {
		t.Fatalf("usage = %d", u)
	}
}

func TestQuotaFreedByDelete(t *testing.T) {
	e := newEnv(t, Config{UserQuota: 1000})
	ctx := context.Background()
	s := e.upload(alice, "a.bin", "", make([]byte, 900))
	if _, err := e.svc.Slot(ctx, alice, "b.bin", 200, ""); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if err := e.svc.Delete(ctx, s.FileID); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.get(s.GetURL); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after Delete: %d", resp.StatusCode)
	}
	if _, err := e.svc.Slot(ctx, alice, "b.bin", 200, ""); err != nil {
		t.Fatalf("after delete: %v", err)
	}
}

func TestQuotaUnderConcurrency(t *testing.T) {
	e := newEnv(t, Config{UserQuota: 10_000})
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := e.svc.Slot(context.Background(), alice, "x.bin", 1000, "")
			if err != nil {
				return
			}
			mu.Lock()
			granted++
			mu.Unlock()
			e.put(s, "", make([]byte, 1000))
		}()
	}
	wg.Wait()
	if granted > 10 {
		t.Fatalf("%d slots of 1000 bytes granted under a 10000-byte quota", granted)
	}
	if u, _ := e.svc.store.Usage(context.Background(), "alice@example.com"); u > 10_000 {
		t.Fatalf("usage %d over quota", u)
	}
}

func TestPendingSlotsBounded(t *testing.T) {
	e := newEnv(t, Config{})
	var err error
	for i := 0; i <= maxPendingSlots; i++ {
		_, err = e.svc.Slot(context.Background(), alice, "x.bin", 1, "")
	}
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("slot %d: %v", maxPendingSlots+1, err)
	}
}

func TestSlotBlacklist(t *testing.T) {
	e := newEnv(t, Config{})
	for _, name := range []string{"setup.exe", "SETUP.EXE", "invoice.pdf.exe", "x.php.jpg", "run.sh", "evil.exe.", "evil.exe  ", "a/b/c.bat", `c:\temp\x.JS`} {
		if _, err := e.svc.Slot(context.Background(), alice, name, 10, ""); !errors.Is(err, ErrBlocked) {
			t.Errorf("Slot(%q) = %v, want ErrBlocked", name, err)
		}
	}
	for _, name := range []string{"photo.jpg", "report.v2.pdf", "page.html", "diagram.svg", "notes"} {
		if _, err := e.svc.Slot(context.Background(), alice, name, 10, ""); err != nil {
			t.Errorf("Slot(%q) = %v", name, err)
		}
	}
	// host-configured list, and the off switch
	e2 := newEnv(t, Config{Blacklist: []string{".PDF"}})
	if _, err := e2.svc.Slot(context.Background(), alice, "a.pdf", 10, ""); !errors.Is(err, ErrBlocked) {
		t.Errorf("custom list: %v", err)
	}
	if _, err := e2.svc.Slot(context.Background(), alice, "a.exe", 10, ""); err != nil {
		t.Errorf("custom list replaces the default: %v", err)
	}
	e3 := newEnv(t, Config{Blacklist: []string{}})
	if _, err := e3.svc.Slot(context.Background(), alice, "a.exe", 10, ""); err != nil {
		t.Errorf("empty list: %v", err)
	}
}

func TestSlotInvalid(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	if _, err := e.svc.Slot(ctx, alice, "a.txt", 0, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("size 0: %v", err)
	}
	if _, err := e.svc.Slot(ctx, alice, "a.txt", -5, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative size: %v", err)
	}
	if _, err := e.svc.Slot(ctx, jid.JID{}, "a.txt", 1, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("no owner: %v", err)
	}
	if _, err := e.svc.Slot(ctx, jid.MustParse("example.com"), "a.txt", 1, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("domain as owner: %v", err)
	}
}

func TestTraversalNames(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct{ in, want string }{
		{"../../etc/passwd", "passwd"},
		{`..\..\x`, "x"},
		{"a\x00b.txt", "ab.txt"},
		{"..", "file"},
		{"/", "file"},
		{".htaccess", "htaccess"},
		{strings.Repeat("é", 300) + ".txt", ""},
	} {
		s := e.upload(alice, tc.in, "", []byte("data"))
		f, err := e.svc.File(context.Background(), s.FileID)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want != "" && f.Name != tc.want {
			t.Errorf("name %q stored as %q, want %q", tc.in, f.Name, tc.want)
		}
		if len(f.Name) > maxNameBytes || strings.ContainsAny(f.Name, "/\\\x00") {
			t.Errorf("name %q stored as %q", tc.in, f.Name)
		}
		if !strings.HasSuffix(f.Name, ".txt") && strings.HasSuffix(tc.in, ".txt") {
			t.Errorf("name %q lost its extension: %q", tc.in, f.Name)
		}
		u, _ := url.Parse(s.GetURL)
		if strings.Contains(u.Path, "..") || strings.Count(u.Path, "/") != 5 {
			t.Errorf("GetURL %q escapes its directory", s.GetURL)
		}
		resp, body := e.get(s.GetURL)
		if resp.StatusCode != 200 || string(body) != "data" {
			t.Errorf("GET %q: %d %q", s.GetURL, resp.StatusCode, body)
		}
	}
	// only files the directory store holds are reachable
	for _, p := range []string{"/file/../index.db/x", "/file/..%2Findex.db/x", "/file/%2e%2e/x", "/thumb/..", "/preview/index.db"} {
		resp, body := e.get(e.srv.URL + "/parley/files" + p)
		if resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s: 200 %q", p, body[:min(len(body), 40)])
		}
	}
}

func TestExchanged(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	a := e.upload(alice, "a.txt", "", []byte("from alice"))
	e.clock.Advance(time.Second)
	b := e.upload(bob, "b.txt", "", []byte("from bob"))
	e.clock.Advance(time.Second)
	c := e.upload(alice, "c.txt", "", []byte("to carol"))

	for _, id := range e.svc.FileIDs("look: " + a.GetURL + " and " + b.GetURL + " and " + a.GetURL) {
		if err := e.svc.Shared(ctx, id, alice, bob); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
	}
	if err := e.svc.Shared(ctx, c.FileID, alice, carol); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	// bob sends b back: it moves to the top, now sent by bob
	id, ok := e.svc.FileID(b.GetURL)
	if !ok || id != b.FileID {
		t.Fatalf("FileID(%q) = %q, %v", b.GetURL, id, ok)
	}
	if err := e.svc.Shared(ctx, id, bob, alice); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Shared(ctx, strings.Repeat("a", 32), alice, bob); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown file: %v", err)
	}

	list, err := e.svc.Exchanged(ctx, alice, bob.Bare())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != b.FileID || list[1].ID != a.FileID {
		t.Fatalf("alice<->bob = %+v", list)
	}
	if list[0].SharedBy != "bob@example.com" || list[1].SharedBy != "alice@example.com" || !list[0].SharedAt.After(list[1].SharedAt) {
		t.Errorf("share details: %+v", list)
	}
	// the same conversation from bob's side
	list2, _ := e.svc.Exchanged(ctx, bob, alice)
	if len(list2) != 2 || list2[0].ID != list[0].ID {
		t.Errorf("bob<->alice = %+v", list2)
	}
	if l, _ := e.svc.Exchanged(ctx, alice, carol); len(l) != 1 || l[0].ID != c.FileID {
		t.Errorf("alice<->carol = %+v", l)
	}
	if l, _ := e.svc.Exchanged(ctx, bob, carol); len(l) != 0 {
		t.Errorf("bob<->carol = %+v", l)
	}
	// deleting a file takes it out of the list
	if err := e.svc.Delete(ctx, a.FileID); err != nil {
		t.Fatal(err)
	}
	if l, _ := e.svc.Exchanged(ctx, alice, bob); len(l) != 1 {
		t.Errorf("after delete: %+v", l)
	}
}

func TestFileIDParsing(t *testing.T) {
	e := newEnv(t, Config{BaseURL: "https://mail.example.com/parley/files/"})
	id := strings.Repeat("b", 32)
	good := "https://mail.example.com/parley/files/file/" + id + "/x.png"
	if got, ok := e.svc.FileID(good); !ok || got != id {
		t.Errorf("FileID(good) = %q %v", got, ok)
	}
	for _, bad := range []string{
		"https://evil.example/parley/files/file/" + id + "/x.png",
		"https://mail.example.com/other/file/" + id + "/x.png",
		"https://mail.example.com/parley/files/file/short/x.png",
		"https://mail.example.com/parley/files/upload/" + id + "/x.png",
		"not a url",
	} {
		if got, ok := e.svc.FileID(bad); ok {
			t.Errorf("FileID(%q) = %q", bad, got)
		}
	}
	if ids := e.svc.FileIDs("see " + good + ", and " + good + "?download=1"); len(ids) != 1 || ids[0] != id {
		t.Errorf("FileIDs = %v", ids)
	}
}

func TestURLs(t *testing.T) {
	e := newEnv(t, Config{})
	f := File{ID: strings.Repeat("c", 32), Name: "a b.png", ContentType: "image/png"}
	u := e.svc.URLs(f)
	base := e.srv.URL + "/parley/files"
	if u.Get != base+"/file/"+f.ID+"/a%20b.png" || u.Download != u.Get+"?download=1" ||
		u.Preview != base+"/preview/"+f.ID || u.Thumb != base+"/thumb/"+f.ID {
		t.Errorf("URLs = %+v", u)
	}
	if e.svc.URLs(File{ID: f.ID, Name: "a.zip", ContentType: "application/zip"}).Thumb != "" {
		t.Error("thumb URL for a zip")
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{Dir: t.TempDir()},
		{Dir: t.TempDir(), BaseURL: "/relative"},
		{Dir: t.TempDir(), BaseURL: "ftp://x/y"},
		{Dir: t.TempDir(), BaseURL: "https://x/y?q=1"},
		{BaseURL: "https://x/y"},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestMountedWithStripPrefix(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	svc, err := New(Config{Dir: t.TempDir(), BaseURL: srv.URL + "/chat/files"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	mux.Handle("/chat/files/", http.StripPrefix("/chat/files", svc.Handler()))
	e := &env{t: t, svc: svc, srv: srv, clock: newClock()}
	s := e.upload(alice, "x.txt", "text/plain", []byte("stripped"))
	if _, body := e.get(s.GetURL); string(body) != "stripped" {
		t.Fatalf("GET = %q", body)
	}
}

func TestTwoServicesIndependent(t *testing.T) {
	e1 := newEnv(t, Config{})
	e2 := newEnv(t, Config{})
	s := e1.upload(alice, "x.txt", "", []byte("one"))
	// the same token and ID mean nothing to the other service
	u := strings.Replace(s.GetURL, e1.srv.URL, e2.srv.URL, 1)
	if resp, _ := e2.get(u); resp.StatusCode != http.StatusNotFound {
		t.Errorf("other service served the file: %d", resp.StatusCode)
	}
}

func TestStoreFailureLeavesNothing(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	// a Put that fails midway leaves no blob and no record
	if _, err := e.svc.store.Put(ctx, strings.Repeat("d", 32), &failingReader{n: 1000}); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	if _, _, err := e.svc.store.Open(ctx, strings.Repeat("d", 32)); !errors.Is(err, ErrNotFound) {
		t.Errorf("partial blob visible: %v", err)
	}
}

func TestClosed(t *testing.T) {
	e := newEnv(t, Config{})
	s, _ := e.svc.Slot(context.Background(), alice, "a.txt", 1, "")
	e.svc.Close()
	if _, err := e.svc.Slot(context.Background(), alice, "a.txt", 1, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Slot after Close: %v", err)
	}
	if got := e.put(s, "", []byte("x")); got != http.StatusServiceUnavailable {
		t.Errorf("PUT after Close: %d", got)
	}
}
