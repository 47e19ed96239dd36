package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Handler returns the HTTP side of the Service, to be mounted by the host
// at the path of Config.BaseURL (with or without http.StripPrefix: a
// request path that still starts with that path has it removed):
//
//	PUT  /upload/{token}/{name}   XEP-0363 upload into a slot; 201 Created
//	GET  /file/{id}/{name}        the file, with Range support;
//	                              ?download=1 forces an attachment
//	GET  /thumb/{id}              a thumbnail (JPEG, or PNG when it has alpha)
//	GET  /preview/{id}            an HTML page showing the file
//
// Every response carries X-Content-Type-Options: nosniff and
// Referrer-Policy: no-referrer (the URLs are the credentials); file
// responses also carry a sandboxing Content-Security-Policy and
// Cross-Origin-Resource-Policy: same-site. Downloads need no login:
// knowing the unguessable URL is the permission, as XEP-0363 intends.
//
// The handler is safe for concurrent use.
func (s *Service) Handler() http.Handler { return s.handler }

func (s *Service) newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /upload/{token}/{name}", s.serveUpload)
	mux.HandleFunc("OPTIONS /upload/{token}/{name}", serveUploadPreflight)
	mux.HandleFunc("GET /file/{id}/{name}", s.serveFile)
	mux.HandleFunc("GET /thumb/{id}", s.serveThumb)
	mux.HandleFunc("GET /preview/{id}", s.servePreview)
	prefix := s.basePath
	rawPrefix := (&url.URL{Path: prefix}).EscapedPath()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if prefix != "" && strings.HasPrefix(r.URL.Path, prefix+"/") {
			r2 := new(http.Request)
			*r2 = *r
			r2.URL = new(url.URL)
			*r2.URL = *r.URL
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
			r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, rawPrefix)
			r = r2
		}
		mux.ServeHTTP(w, r)
	})
}

// Upload responses allow any origin: a web XMPP client on another site
// uploads with the slot's URL, which is its own credential, and sends no
// cookies.
func setUploadCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "PUT")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "3600")
}

func serveUploadPreflight(w http.ResponseWriter, r *http.Request) {
	setUploadCORS(w.Header())
	w.WriteHeader(http.StatusNoContent)
}

// serveUpload receives the PUT of XEP-0363 section 6. The slot is used up
// by this request whatever its outcome; a client whose upload failed asks
// for a new slot.
func (s *Service) serveUpload(w http.ResponseWriter, r *http.Request) {
	setUploadCORS(w.Header())
	sl, err := s.claim(r.PathValue("token"))
	switch {
	case errors.Is(err, errExpired):
		http.Error(w, "upload slot expired; request a new one", http.StatusGone)
		return
	case errors.Is(err, ErrClosed):
		http.Error(w, "service closed", http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, "no such upload slot (unknown, expired or already used)", http.StatusNotFound)
		return
	}
	defer s.done(sl)

	switch {
	case r.ContentLength < 0:
		http.Error(w, "Content-Length required", http.StatusLengthRequired)
		return
	case r.ContentLength > sl.size:
		http.Error(w, "body larger than the slot's size", http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength != sl.size:
		http.Error(w, "Content-Length does not match the slot's size", http.StatusBadRequest)
		return
	}
	if sl.contentType != "" && baseType(r.Header.Get("Content-Type")) != sl.contentType {
		http.Error(w, "Content-Type does not match the slot's", http.StatusUnsupportedMediaType)
		return
	}

	sum := sha256.New()
	body := http.MaxBytesReader(w, r.Body, sl.size)
	n, err := s.store.Put(r.Context(), sl.id, io.TeeReader(body, sum))
	if err != nil || n != sl.size {
		s.store.Delete(r.Context(), sl.id)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			http.Error(w, "body larger than the slot's size", http.StatusRequestEntityTooLarge)
		case err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			http.Error(w, "body shorter than the slot's size", http.StatusBadRequest)
		default:
			if r.Context().Err() == nil {
				s.log.Error("files: storing upload", "id", sl.id, "owner", sl.owner, "err", err)
			}
			http.Error(w, "could not store the file", http.StatusInternalServerError)
		}
		return
	}
	ct := sl.contentType
	if ct == "" {
		ct = baseType(mime.TypeByExtension(path.Ext(sl.name)))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	f := File{
		ID:          sl.id,
		Owner:       sl.owner,
		Name:        sl.name,
		Size:        n,
		ContentType: ct,
		SHA256:      hex.EncodeToString(sum.Sum(nil)),
		Created:     s.now().UTC(),
	}
	if err := s.store.PutFile(r.Context(), f); err != nil {
		s.store.Delete(r.Context(), sl.id)
		s.log.Error("files: recording upload", "id", sl.id, "owner", sl.owner, "err", err)
		http.Error(w, "could not store the file", http.StatusInternalServerError)
		return
	}
	s.log.Info("files: uploaded", "id", f.ID, "owner", f.Owner, "size", f.Size)
	w.Header().Set("Location", s.fileURL(f.ID, f.Name))
	w.WriteHeader(http.StatusCreated)
}

// openFile finds a file's record and opens its content, answering the
// request itself (and returning ok false) when it cannot.
func (s *Service) openFile(w http.ResponseWriter, r *http.Request) (File, io.ReadSeekCloser, []byte, bool) {
	id := r.PathValue("id")
	if !validFileID(id) {
		http.NotFound(w, r)
		return File{}, nil, nil, false
	}
	f, err := s.store.File(r.Context(), id)
	if err == nil {
		var rc io.ReadSeekCloser
		if rc, _, err = s.store.Open(r.Context(), id); err == nil {
			head := make([]byte, sniffLen)
			n, err := io.ReadFull(rc, head)
			if err == nil || err == io.ErrUnexpectedEOF || err == io.EOF {
				if _, err = rc.Seek(0, io.SeekStart); err == nil {
					return f, rc, head[:n], true
				}
			}
			rc.Close()
		}
	}
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
	} else {
		s.log.Error("files: opening file", "id", id, "err", err)
		http.Error(w, "could not read the file", http.StatusInternalServerError)
	}
	return File{}, nil, nil, false
}

func (s *Service) serveFile(w http.ResponseWriter, r *http.Request) {
	f, rc, head, ok := s.openFile(w, r)
	if !ok {
		return
	}
	defer rc.Close()
	p := classify(f.ContentType, f.Name, head)
	h := w.Header()
	setFileHeaders(h, p, f.Name, r.URL.Query().Has("download"))
	h.Set("ETag", `"`+f.SHA256+`"`)
	h.Set("Cache-Control", "private, no-cache")
	// Content-Type is set, so ServeContent does no sniffing of its own; it
	// answers Range, If-Range, If-None-Match and HEAD.
	http.ServeContent(w, r, "", f.Created, rc)
}
