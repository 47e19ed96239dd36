package pubsub

import "errors"

// Error is a refusal with the XMPP conditions XEP-0060 gives it: a stanza
// error condition (RFC 6120) and, where the XEP names one, a condition of
// the http://jabber.org/protocol/pubsub#errors namespace. The edge puts
// both on the wire; errors.Is matches the sentinels below.
type Error struct {
	Cond    string // stanza error condition ("item-not-found")
	App     string // pubsub#errors condition, "" when none
	Feature string // for App "unsupported": the feature
	Text    string
	kind    error
}

func (e *Error) Error() string {
	s := "pubsub: " + e.Cond
	if e.App != "" {
		s += " (" + e.App + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

func (e *Error) Unwrap() error { return e.kind }

// Sentinels for errors.Is; the *Error returned carries the wire details.
var (
	ErrNotFound        = errors.New("pubsub: no such node or item")
	ErrForbidden       = errors.New("pubsub: forbidden")
	ErrNotAuthorized   = errors.New("pubsub: access model refuses the requester")
	ErrExists          = errors.New("pubsub: node exists")
	ErrPrecondition    = errors.New("pubsub: publish-options precondition not met")
	ErrBadConfig       = errors.New("pubsub: configuration not acceptable")
	ErrBadRequest      = errors.New("pubsub: bad request")
	ErrPayloadTooBig   = errors.New("pubsub: payload too big")
	ErrNotSubscribed   = errors.New("pubsub: not subscribed")
	ErrStore           = errors.New("pubsub: store failed")
	errUnsupportedBase = errors.New("pubsub: unsupported")
)

func newErr(kind error, cond, app, text string) *Error {
	return &Error{Cond: cond, App: app, Text: text, kind: kind}
}

func notFound(text string) error { return newErr(ErrNotFound, "item-not-found", "", text) }

func forbidden(text string) error { return newErr(ErrForbidden, "forbidden", "", text) }

func badRequest(app, text string) error { return newErr(ErrBadRequest, "bad-request", app, text) }

// unsupported is feature-not-implemented with <unsupported feature=.../>.
func unsupported(feature, text string) error {
	e := newErr(errUnsupportedBase, "feature-not-implemented", "unsupported", text)
	e.Feature = feature
	return e
}
