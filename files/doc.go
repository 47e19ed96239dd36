// Package files is how Parley users share files and links in chat: HTTP
// File Upload (XEP-0363, urn:xmpp:http:upload:0) with quotas and an
// extension blacklist, safe serving of what was uploaded, server-made
// thumbnails, preview pages that open in a new window, a per-conversation
// list of exchanged files (the attachments tab), and link cards built from
// a page's Open Graph tags.
//
// The package knows nothing about XML. The XMPP edge translates:
//
//   - an <iq type='get'><request xmlns='urn:xmpp:http:upload:0' filename
//     size content-type/> from a local user becomes Service.Slot; the
//     Slot's PutURL, Headers and GetURL go back in <slot><put><get>. The
//     errors map as their doc comments say: *TooLargeError to
//     <not-acceptable/> with <file-too-large><max-file-size>, ErrQuota to
//     <resource-constraint/> (type wait), ErrBlocked to <not-acceptable/>,
//     ErrInvalid to <bad-request/>, anything else to
//     <internal-server-error/>.
//   - service discovery advertises the feature with Service.MaxFileSize
//     as the max-file-size field.
//   - when it routes a one-to-one message whose body (or XEP-0066 OOB URL)
//     holds a download link of this Service (Service.FileIDs finds them),
//     it calls Service.Shared, so the file shows in Service.Exchanged for
//     both users.
//
// The host mounts Service.Handler at the path of Config.BaseURL. The
// client then PUTs the file there and shares the GET URL; recipients fetch
// it without logging in, since the URL itself (160 random bits) is the
// permission, as XEP-0363 intends.
//
// # Quick start
//
//	svc, err := files.New(files.Config{
//		Dir:     "/var/lib/parley/files",
//		BaseURL: "https://mail.example.com/parley/files",
//	})
//	if err != nil {
//		return err
//	}
//	defer svc.Close()
//	mux.Handle("/parley/files/", svc.Handler())
//
// # Uploads
//
// A slot is single-use and expires after Config.SlotTTL (5 minutes). Its
// token has 256 random bits and is never the file's ID, so a download link
// says nothing about the upload URL. The PUT must announce exactly the
// slot's size in Content-Length and, if the slot request named a content
// type, the same media type; the body streams to the Store through a
// SHA-256 hash and is never held in memory. Unused slots count against
// the owner's quota until they expire, so parallel slot requests cannot
// overrun it.
//
// File names are sanitised (SanitizeName): only the last path element,
// NFC, no control or bidirectional-override characters, no Windows device
// names, at most 200 bytes with the extension kept. Blocked checks every
// extension of a name against the blacklist, so "invoice.pdf.exe" and
// "x.php.jpg" are both refused with the default list; other parts of
// Parley that accept files (meetings) use the same function.
//
// # Serving
//
// The bytes decide how a file is served, not the type the uploader
// declared: the first 512 bytes are sniffed, and a file is shown inline
// only when they are an image (PNG, JPEG, GIF, WebP, BMP), a PDF,
// audio or video, or plain text that is not markup and not declared or
// named as markup or script. Everything else, HTML, SVG, XML and
// JavaScript among it, and a "PNG" whose bytes are HTML, is sent as
// Content-Type application/octet-stream with Content-Disposition:
// attachment. Every file response carries X-Content-Type-Options: nosniff,
// Cross-Origin-Resource-Policy: same-site, Referrer-Policy: no-referrer
// and Content-Security-Policy: sandbox; default-src 'none' (plus img-src
// or media-src 'self' for images and media). PDFs are the exception to the
// sandbox, which Chromium's PDF viewer refuses to run in; their policy
// still allows nothing but the viewer itself.
//
// Thumbnails (JPEG, PNG, GIF first frame, WebP) are made on first request
// and kept next to the file. The image header is read first and images
// over Config.MaxImagePixels or Config.MaxImageBytes are refused before a
// pixel buffer is allocated, so an image bomb costs nothing; at most two
// images are decoded at once.
//
// # Link cards
//
// Service.LinkCard fetches a page and reads its og: and twitter: meta
// tags, <title> and meta description with a small tolerant scanner (first
// 512 KiB, any charset the page names). The fetcher connects only to
// public addresses: the check runs on the address actually dialed, so a
// name that resolves to 127.0.0.1 or 169.254.169.254, DNS rebinding, and
// redirects to private addresses are all refused. It follows at most 3
// redirects, gives up after 10 seconds, and parses only text/html.
//
// # Storage
//
// A Store keeps blobs and records; NewDirStore is the default (files in a
// directory tree, atomic writes, records in a bbolt index). A host with
// its own object store implements Store.
package files
