package files_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/parleyhq/parley/files"
	"github.com/parleyhq/parley/jid"
)

// A toy host: the Service mounted on the host's mux, a client that asks
// for a slot (what xmppsrv does for an XEP-0363 request), uploads, shares
// the link in a chat message, and the attachments tab that results.
func Example() {
	mux := http.NewServeMux()
	host := httptest.NewServer(mux) // https://mail.example.com in production
	defer host.Close()

	dir, _ := os.MkdirTemp("", "parley-files")
	defer os.RemoveAll(dir)
	svc, err := files.New(files.Config{
		Dir:     dir,
		BaseURL: host.URL + "/parley/files",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	mux.Handle("/parley/files/", svc.Handler())

	ctx := context.Background()
	alice := jid.MustParse("alice@example.com/laptop")
	bob := jid.MustParse("bob@example.com")

	// <request filename='notes.txt' size='12' content-type='text/plain'/>
	data := []byte("meeting at 3")
	slot, err := svc.Slot(ctx, alice, "notes.txt", int64(len(data)), "text/plain")
	if err != nil {
		log.Fatal(err)
	}

	// the client's PUT
	req, _ := http.NewRequest(http.MethodPut, slot.PutURL, bytes.NewReader(data))
	req.Header.Set("Content-Type", "text/plain")
	for k, v := range slot.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("PUT:", resp.Status)

	// the message alice sends carries the GET URL; routing it, the edge
	// records the share
	body := "here are the notes: " + slot.GetURL
	for _, id := range svc.FileIDs(body) {
		svc.Shared(ctx, id, alice, bob)
	}

	// bob downloads it
	resp, err = http.Get(slot.GetURL)
	if err != nil {
		log.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("GET: %s %q\n", resp.Header.Get("Content-Type"), got)

	// the attachments tab of the alice-bob conversation
	list, _ := svc.Exchanged(ctx, bob, alice)
	for _, f := range list {
		fmt.Println("exchanged:", f.Name, f.Size, "bytes, sent by", f.SharedBy)
	}

	// a file over the limit: the edge answers <file-too-large>
	_, err = svc.Slot(ctx, alice, "film.mkv", 1<<40, "")
	var tooLarge *files.TooLargeError
	if errors.As(err, &tooLarge) {
		fmt.Println("max-file-size:", tooLarge.Max)
	}
	// Output:
	// PUT: 201 Created
	// GET: text/plain; charset=utf-8 "meeting at 3"
	// exchanged: notes.txt 12 bytes, sent by alice@example.com
	// max-file-size: 104857600
}

// Blocked is the shared extension check; meetings use it too.
func ExampleBlocked() {
	for _, name := range []string{"report.pdf", "invoice.pdf.exe", "shell.php.jpg", "Setup.EXE."} {
		fmt.Println(name, files.Blocked(name, files.DefaultBlacklist()))
	}
	// Output:
	// report.pdf false
	// invoice.pdf.exe true
	// shell.php.jpg true
	// Setup.EXE. true
}

func ExampleSanitizeName() {
	fmt.Println(files.SanitizeName("../../etc/passwd"))
	fmt.Println(files.SanitizeName(`C:\Users\me\Q1 report.xlsx`))
	fmt.Println(files.SanitizeName("nul.txt"))
	// Output:
	// passwd
	// Q1 report.xlsx
	// _nul.txt
}
