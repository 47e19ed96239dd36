package xmppsrv

import (
	"errors"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/files"
	"github.com/parleyhq/parley/jid"
)

const (
	nsUpload = "urn:xmpp:http:upload:0"
	nsOOB    = "jabber:x:oob"
)

// uploadJID is the HTTP File Upload service of a domain (XEP-0363), found
// through the server's disco#items.
func uploadJID(domain string) jid.JID {
	j, _ := jid.New("", "upload."+domain, "")
	return j
}

// isUpload reports whether j is the upload service of a served domain.
func (srv *Server) isUpload(j jid.JID) bool {
	if srv.cfg.Files == nil || j.Local() != "" || j.Resource() != "" {
		return false
	}
	d, ok := strings.CutPrefix(j.Domain(), "upload.")
	return ok && srv.Local(d)
}

// uploadIQ answers disco and slot requests sent to the upload service.
func (srv *Server) uploadIQ(s *Session, el *Element, to jid.JID) {
	typ := el.Get("type")
	if typ == "result" || typ == "error" {
		return
	}
	p := el.FirstChild()
	switch {
	case p.Space == nsDiscoI && p.Local == "query" && typ == "get":
		q := NewElement(nsDiscoI, "query")
		q.Add(NewElement(nsDiscoI, "identity", "category", "store", "type", "file", "name", "HTTP File Upload"))
		q.Add(NewElement(nsDiscoI, "feature", "var", nsDiscoI))
		q.Add(NewElement(nsDiscoI, "feature", "var", nsUpload))
		form := NewElement(nsXData, "x", "type", "result")
		form.Add(NewElement(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").Add(NewElement(nsXData, "value").AddText(nsUpload)))
		form.Add(NewElement(nsXData, "field", "var", "max-file-size").Add(NewElement(nsXData, "value").AddText(strconv.FormatInt(srv.cfg.Files.MaxFileSize(), 10))))
		q.Add(form)
		s.send(iqResult(el, q).Bytes(nsClient))
	case p.Space == nsDiscoIt && p.Local == "query" && typ == "get":
		s.send(iqResult(el, NewElement(nsDiscoIt, "query")).Bytes(nsClient))
	case p.Space == nsPing && p.Local == "ping":
		s.send(iqResult(el, nil).Bytes(nsClient))
	case p.Space == nsUpload && p.Local == "request" && typ == "get":
		srv.slot(s, el, p)
	default:
		s.send(errorReply(el, "service-unavailable", "the upload service answers disco and slot requests"))
	}
}

// slot hands out an upload slot (XEP-0363 §4).
func (srv *Server) slot(s *Session, el, p *Element) {
	size, err := strconv.ParseInt(strings.TrimSpace(p.Get("size")), 10, 64)
	if err != nil || size <= 0 {
		s.send(errorReply(el, "bad-request", "size must be the file's size in bytes"))
		return
	}
	name := p.Get("filename")
	if strings.TrimSpace(name) == "" {
		s.send(errorReply(el, "bad-request", "filename is missing"))
		return
	}
	sl, err := srv.cfg.Files.Slot(s.ctx(), s.bare, name, size, p.Get("content-type"))
	var tooLarge *files.TooLargeError
	switch {
	case errors.As(err, &tooLarge):
		e := errorElement(el, "not-acceptable", "the file is larger than the "+strconv.FormatInt(tooLarge.Max, 10)+" bytes allowed")
		e.Child(nsClient, "error").Add(NewElement(nsUpload, "file-too-large").Add(
			NewElement(nsUpload, "max-file-size").AddText(strconv.FormatInt(tooLarge.Max, 10))))
		s.send(e.Bytes(nsClient))
		return
	case errors.Is(err, files.ErrQuota):
		s.send(errorReply(el, "resource-constraint", "your file storage is full: "+err.Error()+"; delete files or ask your administrator"))
		return
	case errors.Is(err, files.ErrBlocked):
		s.send(errorReply(el, "not-acceptable", "files of this type may not be shared here"))
		return
	case errors.Is(err, files.ErrInvalid):
		s.send(errorReply(el, "bad-request", err.Error()))
		return
	case err != nil:
		srv.log.Error("upload slot", "user", s.bare.String(), "err", err)
		s.send(errorReply(el, "internal-server-error", "uploads are unavailable right now; try again"))
		return
	}
	put := NewElement(nsUpload, "put", "url", sl.PutURL)
	for k, v := range sl.Headers {
		put.Add(NewElement(nsUpload, "header", "name", k).AddText(v))
	}
	s.send(iqResult(el, NewElement(nsUpload, "slot").Add(put, NewElement(nsUpload, "get", "url", sl.GetURL))).Bytes(nsClient))
}

// shareFiles records the files a message shares, for the "attachments"
// list of both participants, and adds XEP-0066 out-of-band data when the
// body is a bare link to one of our files, so every client shows it as a
// file.
func (srv *Server) shareFiles(el *Element, from, to jid.JID) {
	if srv.cfg.Files == nil {
		return
	}
	body := el.ChildText(nsClient, "body")
	oob := el.Child(nsOOB, "x")
	text := body
	if oob != nil {
		text += " " + oob.ChildText(nsOOB, "url")
	}
	ids := srv.cfg.Files.FileIDs(text)
	for _, id := range ids {
		if err := srv.cfg.Files.Shared(srv.ctx, id, from, to); err != nil && !errors.Is(err, files.ErrNotFound) {
			srv.log.Error("recording a shared file", "file", id, "err", err)
		}
	}
	if oob == nil && len(ids) > 0 {
		u := strings.TrimSpace(body)
		if id, ok := srv.cfg.Files.FileID(u); ok && id == ids[0] && !strings.ContainsAny(u, " \n\t") {
			el.Add(NewElement(nsOOB, "x").Add(NewElement(nsOOB, "url").AddText(u)))
		}
	}
}
