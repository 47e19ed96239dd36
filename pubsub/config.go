package pubsub

import (
	"fmt"
	"strconv"
	"strings"
)

// Configuration field names (XEP-0060 section 16.4.4, FORM_TYPE
// http://jabber.org/protocol/pubsub#node_config) that Parley implements.
const (
	FieldAccessModel          = "pubsub#access_model"
	FieldMaxItems             = "pubsub#max_items"
	FieldPersistItems         = "pubsub#persist_items"
	FieldSendLastPublished    = "pubsub#send_last_published_item"
	FieldDeliverNotifications = "pubsub#deliver_notifications"
	FieldDeliverPayloads      = "pubsub#deliver_payloads"
	FieldNotifyRetract        = "pubsub#notify_retract"
	FieldNotifyDelete         = "pubsub#notify_delete"
	FieldNotificationType     = "pubsub#notification_type"
	FieldPublishModel         = "pubsub#publish_model"
	FieldTitle                = "pubsub#title"
	FieldType                 = "pubsub#type"
)

// Access models (XEP-0060 section 4.5). Authorize is not offered: a
// personal service has no one to approve requests in real time.
const (
	Open      = "open"
	Presence  = "presence"
	Roster    = "roster"
	Whitelist = "whitelist"
)

// Values of pubsub#send_last_published_item.
const (
	SendNever             = "never"
	SendOnSub             = "on_sub"
	SendOnSubAndPresence  = "on_sub_and_presence"
	maxItemsUnlimitedWord = "max"
)

// FieldKind is the XEP-0004 type of a configuration field.
type FieldKind string

const (
	Boolean    FieldKind = "boolean"
	ListSingle FieldKind = "list-single"
	TextSingle FieldKind = "text-single"
)

// Field describes one configuration field, for rendering the form.
type Field struct {
	Var     string
	Kind    FieldKind
	Label   string
	Options []string // list-single values
	Default string
}

// Fields lists the configuration fields in the order forms show them.
var Fields = []Field{
	{FieldTitle, TextSingle, "A friendly name for the node", nil, ""},
	{FieldType, TextSingle, "The type of node data, usually specified by the namespace of the payload", nil, ""},
	{FieldAccessModel, ListSingle, "Who may subscribe and retrieve items", []string{Open, Presence, Roster, Whitelist}, Presence},
	{FieldPublishModel, ListSingle, "Who may publish items", []string{"publishers"}, "publishers"},
	{FieldMaxItems, TextSingle, "Max number of items to persist (or max)", nil, "1"},
	{FieldPersistItems, Boolean, "Persist items to storage", nil, "1"},
	{FieldSendLastPublished, ListSingle, "When to send the last published item", []string{SendNever, SendOnSub, SendOnSubAndPresence}, SendOnSubAndPresence},
	{FieldDeliverNotifications, Boolean, "Deliver event notifications", nil, "1"},
	{FieldDeliverPayloads, Boolean, "Deliver payloads with event notifications", nil, "1"},
	{FieldNotifyRetract, Boolean, "Notify subscribers when items are removed from the node", nil, "1"},
	{FieldNotifyDelete, Boolean, "Notify subscribers when the node is deleted", nil, "1"},
	{FieldNotificationType, ListSingle, "Message type of event notifications", []string{"headline", "normal"}, "headline"},
}

func field(name string) (Field, bool) {
	for _, f := range Fields {
		if f.Var == name {
			return f, true
		}
	}
	return Field{}, false
}

// Config is a node's configuration by field name, every value in its
// canonical form: booleans "1" or "0", max_items a number or "max".
type Config map[string]string

// DefaultConfig returns the configuration a new node gets (XEP-0163
// section 7: presence access, notifications with payloads, last item sent
// on subscription and presence).
func DefaultConfig() Config {
	c := make(Config, len(Fields))
	for _, f := range Fields {
		if f.Default != "" {
			c[f.Var] = f.Default
		}
	}
	return c
}

func (c Config) bool(name string) bool { return c[name] == "1" }

// AccessModel returns the node's access model.
func (c Config) AccessModel() string { return c[FieldAccessModel] }

// SendLast returns when the last published item is sent.
func (c Config) SendLast() string { return c[FieldSendLastPublished] }

// DeliverNotifications, DeliverPayloads, NotifyRetract, NotifyDelete and
// PersistItems read the boolean fields.
func (c Config) DeliverNotifications() bool { return c.bool(FieldDeliverNotifications) }
func (c Config) DeliverPayloads() bool      { return c.bool(FieldDeliverPayloads) }
func (c Config) NotifyRetract() bool        { return c.bool(FieldNotifyRetract) }
func (c Config) NotifyDelete() bool         { return c.bool(FieldNotifyDelete) }
func (c Config) PersistItems() bool         { return c.bool(FieldPersistItems) }

// NotificationType is the message type of notifications.
func (c Config) NotificationType() string {
	if t := c[FieldNotificationType]; t != "" {
		return t
	}
	return "headline"
}

// MaxItems returns how many items the node keeps; 0 for "max", the most
// the service allows.
func (c Config) MaxItems() int {
	n, _ := strconv.Atoi(c[FieldMaxItems])
	return n
}

// Normalize checks a value for a field and returns its canonical form.
// Booleans take true/false/1/0, lists one of their options, max_items a
// positive number up to limit or "max".
func Normalize(name, value string, limit int) (string, error) {
	f, ok := field(name)
	if !ok {
		return "", fmt.Errorf("%w: %s is not a configuration field here", ErrBadConfig, name)
	}
	value = strings.TrimSpace(value)
	switch f.Kind {
	case Boolean:
		switch value {
		case "1", "true":
			return "1", nil
		case "0", "false":
			return "0", nil
		}
		return "", fmt.Errorf("%w: %s takes a boolean, not %q", ErrBadConfig, name, value)
	case ListSingle:
		for _, o := range f.Options {
			if o == value {
				return value, nil
			}
		}
		return "", fmt.Errorf("%w: %s takes one of %s, not %q", ErrBadConfig, name, strings.Join(f.Options, ", "), value)
	}
	if name == FieldMaxItems {
		if value == maxItemsUnlimitedWord {
			return value, nil
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > limit {
			return "", fmt.Errorf("%w: %s takes a number from 1 to %d, or max; not %q", ErrBadConfig, name, limit, value)
		}
		return strconv.Itoa(n), nil
	}
	return value, nil
}
