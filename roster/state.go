package roster

import (
	"fmt"
	"slices"

	"github.com/parleyhq/parley/storage"
)

// SubType is the type of a subscription-related presence stanza. The zero
// value means none (as in Outcome.AutoReply).
type SubType uint8

const (
	// Subscribe requests a subscription to the recipient's presence.
	Subscribe SubType = iota + 1
	// Subscribed approves a request, or pre-approves one (RFC 6121 3.4).
	Subscribed
	// Unsubscribe ends the sender's subscription to the recipient.
	Unsubscribe
	// Unsubscribed denies a request or cancels the recipient's
	// subscription to the sender.
	Unsubscribed
)

var subTypeNames = [...]string{"", "subscribe", "subscribed", "unsubscribe", "unsubscribed"}

// ParseSubType maps a presence 'type' attribute to a SubType. Other types
// (available, unavailable, probe, error, ...) are not subscription stanzas
// and return an error.
func ParseSubType(s string) (SubType, error) {
	for i, n := range subTypeNames {
		if i > 0 && n == s {
			return SubType(i), nil
		}
	}
	return 0, fmt.Errorf("roster: %q is not a subscription presence type", s)
}

// String returns the presence type ("subscribe", ...), or "" for zero.
func (t SubType) String() string {
	if int(t) < len(subTypeNames) {
		return subTypeNames[t]
	}
	return fmt.Sprintf("SubType(%d)", uint8(t))
}

// State is one of the nine subscription states of RFC 6121 Appendix A.1, as
// seen from the roster owner ("the user"). Pre-approval is kept beside it in
// storage.RosterItem.Approved.
type State uint8

const (
	StateNone             State = iota // neither is subscribed, nothing pending
	StateNonePendingOut                // the owner asked, no answer yet
	StateNonePendingIn                 // the contact asked, no answer yet
	StateNonePendingOutIn              // both asked, neither answered
	StateTo                            // the owner sees the contact's presence
	StateToPendingIn                   // To, and the contact asked
	StateFrom                          // the contact sees the owner's presence
	StateFromPendingOut                // From, and the owner asked
	StateBoth                          // mutual
)

var stateNames = [...]string{
	"None", "None + Pending Out", "None + Pending In", "None + Pending Out/In",
	"To", "To + Pending In", "From", "From + Pending Out", "Both",
}

// String returns the state's name as RFC 6121 Appendix A writes it.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// StateOf returns the defined state of a stored item. Flags that no defined
// state combines with the subscription (AskOut with "to" or "both",
// PendingIn with "from" or "both") are ignored, as they cannot arise from
// the transitions of Appendix A.
func StateOf(it storage.RosterItem) State {
	switch it.Subscription {
	case storage.SubTo:
		if it.PendingIn {
			return StateToPendingIn
		}
		return StateTo
	case storage.SubFrom:
		if it.AskOut {
			return StateFromPendingOut
		}
		return StateFrom
	case storage.SubBoth:
		return StateBoth
	}
	switch {
	case it.AskOut && it.PendingIn:
		return StateNonePendingOutIn
	case it.AskOut:
		return StateNonePendingOut
	case it.PendingIn:
		return StateNonePendingIn
	}
	return StateNone
}

// set writes state s into the subscription fields of it.
func (s State) set(it *storage.RosterItem) {
	switch s {
	case StateTo, StateToPendingIn:
		it.Subscription = storage.SubTo
	case StateFrom, StateFromPendingOut:
		it.Subscription = storage.SubFrom
	case StateBoth:
		it.Subscription = storage.SubBoth
	default:
		it.Subscription = storage.SubNone
	}
	it.AskOut = s == StateNonePendingOut || s == StateNonePendingOutIn || s == StateFromPendingOut
	it.PendingIn = s == StateNonePendingIn || s == StateNonePendingOutIn || s == StateToPendingIn
	if !it.PendingIn {
		it.PendingInStatus = ""
	}
	if it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth {
		it.Approved = false // a pre-approval has nothing left to approve
	}
}

// hasFrom reports whether the contact is subscribed to the owner.
func hasFrom(s State) bool { return s == StateFrom || s == StateFromPendingOut || s == StateBoth }

// row is one line of an Appendix A table: whether the server routes (A.2)
// or delivers (A.3) the stanza, and the new state ("no state change" is the
// existing state).
type row struct {
	act  bool
	next State
	// A.2.3: the stanza becomes a pre-approval (RFC 6121 3.4).
	preApprove bool
	// A.2.4 note [1]: the stanza cancels a pre-approval.
	cancelPreApproval bool
	// A.3.1 note *: the server auto-replies "subscribed" for the owner.
	autoReply bool
}

// Appendix A.2: the owner's server processing what the owner sends.
var (
	// A.2.1 Outbound Subscribe
	outSubscribe = [9]row{
		StateNone:             {act: true, next: StateNonePendingOut},
		StateNonePendingOut:   {act: true, next: StateNonePendingOut},
		StateNonePendingIn:    {act: true, next: StateNonePendingOutIn},
		StateNonePendingOutIn: {act: true, next: StateNonePendingOutIn},
		StateTo:               {act: true, next: StateTo},
		StateToPendingIn:      {act: true, next: StateToPendingIn},
		StateFrom:             {act: true, next: StateFromPendingOut},
		StateFromPendingOut:   {act: true, next: StateFromPendingOut},
		StateBoth:             {act: true, next: StateBoth},
	}
	// A.2.2 Outbound Unsubscribe
	outUnsubscribe = [9]row{
		StateNone:             {act: true, next: StateNone},
		StateNonePendingOut:   {act: true, next: StateNone},
		StateNonePendingIn:    {act: true, next: StateNonePendingIn},
		StateNonePendingOutIn: {act: true, next: StateNonePendingIn},
		StateTo:               {act: true, next: StateNone},
		StateToPendingIn:      {act: true, next: StateNonePendingIn},
		StateFrom:             {act: true, next: StateFrom},
		StateFromPendingOut:   {act: true, next: StateFrom},
		StateBoth:             {act: true, next: StateFrom},
	}
	// A.2.3 Outbound Subscribed
	outSubscribed = [9]row{
		StateNone:             {next: StateNone, preApprove: true},
		StateNonePendingOut:   {next: StateNonePendingOut, preApprove: true},
		StateNonePendingIn:    {act: true, next: StateFrom},
		StateNonePendingOutIn: {act: true, next: StateFromPendingOut},
		StateTo:               {next: StateTo, preApprove: true},
		StateToPendingIn:      {act: true, next: StateBoth},
		StateFrom:             {next: StateFrom},
		StateFromPendingOut:   {next: StateFromPendingOut},
		StateBoth:             {next: StateBoth},
	}
	// A.2.4 Outbound Unsubscribed
	outUnsubscribed = [9]row{
		StateNone:             {next: StateNone, cancelPreApproval: true},
		StateNonePendingOut:   {next: StateNonePendingOut, cancelPreApproval: true},
		StateNonePendingIn:    {act: true, next: StateNone},
		StateNonePendingOutIn: {act: true, next: StateNonePendingOut},
		StateTo:               {next: StateTo, cancelPreApproval: true},
		StateToPendingIn:      {act: true, next: StateTo},
		StateFrom:             {act: true, next: StateNone},
		StateFromPendingOut:   {act: true, next: StateNonePendingOut},
		StateBoth:             {act: true, next: StateTo},
	}
)

// Appendix A.3: the owner's server processing what a contact sends.
var (
	// A.3.1 Inbound Subscribe
	inSubscribe = [9]row{
		StateNone:             {act: true, next: StateNonePendingIn},
		StateNonePendingOut:   {act: true, next: StateNonePendingOutIn},
		StateNonePendingIn:    {next: StateNonePendingIn},
		StateNonePendingOutIn: {next: StateNonePendingOutIn},
		StateTo:               {act: true, next: StateToPendingIn},
		StateToPendingIn:      {next: StateToPendingIn},
		StateFrom:             {next: StateFrom, autoReply: true},
		StateFromPendingOut:   {next: StateFromPendingOut, autoReply: true},
		StateBoth:             {next: StateBoth, autoReply: true},
	}
	// A.3.2 Inbound Unsubscribe
	inUnsubscribe = [9]row{
		StateNone:             {next: StateNone},
		StateNonePendingOut:   {next: StateNonePendingOut},
		StateNonePendingIn:    {act: true, next: StateNone},
		StateNonePendingOutIn: {act: true, next: StateNonePendingOut},
		StateTo:               {next: StateTo},
		StateToPendingIn:      {act: true, next: StateTo},
		StateFrom:             {act: true, next: StateNone},
		StateFromPendingOut:   {act: true, next: StateNonePendingOut},
		StateBoth:             {act: true, next: StateTo},
	}
	// A.3.3 Inbound Subscribed
	inSubscribed = [9]row{
		StateNone:             {next: StateNone},
		StateNonePendingOut:   {act: true, next: StateTo},
		StateNonePendingIn:    {next: StateNonePendingIn},
		StateNonePendingOutIn: {act: true, next: StateToPendingIn},
		StateTo:               {next: StateTo},
		StateToPendingIn:      {next: StateToPendingIn},
		StateFrom:             {next: StateFrom},
		StateFromPendingOut:   {act: true, next: StateBoth},
		StateBoth:             {next: StateBoth},
	}
	// A.3.4 Inbound Unsubscribed
	inUnsubscribed = [9]row{
		StateNone:             {next: StateNone},
		StateNonePendingOut:   {act: true, next: StateNone},
		StateNonePendingIn:    {next: StateNonePendingIn},
		StateNonePendingOutIn: {act: true, next: StateNonePendingIn},
		StateTo:               {act: true, next: StateNone},
		StateToPendingIn:      {act: true, next: StateNonePendingIn},
		StateFrom:             {next: StateFrom},
		StateFromPendingOut:   {act: true, next: StateFrom},
		StateBoth:             {act: true, next: StateFrom},
	}
)

// Step is what the owner's server must do with one subscription stanza, as
// computed by OutboundStep and InboundStep.
type Step struct {
	// Item is the contact's record after the stanza, or nil when there is
	// none (there was none and the stanza creates none, or it is deleted).
	Item *storage.RosterItem
	// Write reports that the store must change: put Item, or delete the
	// record when Item is nil.
	Write bool
	// Route (outbound only): send the stanza on to the contact.
	Route bool
	// Deliver (inbound only): deliver the stanza to the owner's available
	// resources (RFC 6121 3.1.3: or keep it for them, see Service.Pending).
	Deliver bool
	// Push: the roster item as the owner's clients see it changed (or
	// appeared, or went away), so a roster push is due.
	Push bool
	// AutoReply is a stanza the server sends to the contact on the owner's
	// behalf: Subscribed for a request the owner already granted or
	// pre-approved (RFC 6121 3.1.3, 3.4).
	AutoReply SubType
	// SendPresence: the owner's server sends the owner's current presence,
	// from each available resource, to the contact, who was just allowed to
	// see it (RFC 6121 3.1.5).
	SendPresence bool
	// SendUnavailable: the contact's subscription to the owner ended, so the
	// owner's server sends presence of type unavailable from each of the
	// owner's available resources to the contact (RFC 6121 3.2.2, 3.3.3).
	// For an outbound unsubscribed it goes before the routed stanza.
	SendUnavailable bool
}

// OutboundStep applies RFC 6121 Appendix A.2 (sections 3.1.2, 3.1.5, 3.2.2,
// 3.3.2 and 3.4) to the owner's record of a contact, cur (nil when there is
// none), for a stanza of type t the owner sends to the contact. It does not
// modify cur; a record it creates has an empty Contact for the caller to
// fill in.
//
// Records the owner never added (storage.RosterItem.Hidden) become visible
// when the owner subscribes or approves, and are deleted when the owner's
// stanza leaves nothing in them; a request from someone not in the roster
// is never shown as an item until approved (Appendix A.1, "None + Pending
// In").
func OutboundStep(cur *storage.RosterItem, t SubType) Step {
	var tab *[9]row
	switch t {
	case Subscribe:
		tab = &outSubscribe
	case Subscribed:
		tab = &outSubscribed
	case Unsubscribe:
		tab = &outUnsubscribe
	case Unsubscribed:
		tab = &outUnsubscribed
	default:
		return Step{Item: cur}
	}
	var it storage.RosterItem
	if cur != nil {
		it = clone(*cur)
	}
	from := StateOf(it)
	r := tab[from]
	st := Step{Route: r.act}
	r.next.set(&it)
	switch {
	case r.preApprove:
		it.Approved = true
	case r.cancelPreApproval:
		it.Approved = false
	}
	if t == Subscribe || (t == Subscribed && (r.act || r.preApprove)) {
		it.Hidden = false // the owner wants this contact in the roster
	}
	if t == Subscribed && r.act {
		st.SendPresence = true
	}
	if t == Unsubscribed && hasFrom(from) && !hasFrom(r.next) {
		st.SendUnavailable = true
	}
	return finish(cur, it, st)
}

// InboundStep applies RFC 6121 Appendix A.3 (sections 3.1.3, 3.1.6, 3.2.3,
// 3.3.3 and 3.4) to the owner's record of a contact, cur (nil when there is
// none), for a stanza of type t the contact sent to the owner; status is the
// request's status text, kept with a pending request. It does not modify
// cur; a record it creates has an empty Contact for the caller to fill in.
// A request from someone not in the roster is kept in a Hidden record.
//
// A request the owner pre-approved is approved at once: the stanza is not
// delivered, the server answers "subscribed" for the owner, and the state
// moves on as if the owner had sent that answer (3.1.3, 3.4).
func InboundStep(cur *storage.RosterItem, t SubType, status string) Step {
	var tab *[9]row
	switch t {
	case Subscribe:
		tab = &inSubscribe
	case Subscribed:
		tab = &inSubscribed
	case Unsubscribe:
		tab = &inUnsubscribe
	case Unsubscribed:
		tab = &inUnsubscribed
	default:
		return Step{Item: cur}
	}
	var it storage.RosterItem
	if cur == nil {
		it.Hidden = true
	} else {
		it = clone(*cur)
	}
	from := StateOf(it)
	r := tab[from]
	st := Step{Deliver: r.act}
	r.next.set(&it)
	if t == Subscribe && r.next != from {
		it.PendingInStatus = status
	}
	switch {
	case t == Subscribe && it.Approved && r.act:
		// Pre-approved: answer for the owner (A.2.3 applied to the
		// pending state reached above).
		st.Deliver = false
		st.AutoReply = Subscribed
		st.SendPresence = true
		outSubscribed[r.next].next.set(&it)
	case r.autoReply:
		// The contact already has a subscription (3.1.3). An auto-reply
		// is an approval, so presence follows as with any approval (3.1.5).
		st.AutoReply = Subscribed
		st.SendPresence = true
	}
	if t == Unsubscribe && hasFrom(from) && !hasFrom(StateOf(it)) {
		st.SendUnavailable = true
	}
	return finish(cur, it, st)
}

// finish decides whether the new record is stored, deleted, or pushed.
func finish(cur *storage.RosterItem, it storage.RosterItem, st Step) Step {
	if StateOf(it) == StateNone && !it.Approved && (it.Hidden || cur == nil) {
		// Nothing worth keeping: a record the owner never saw that no
		// longer holds a request, or a stanza about a stranger that
		// leaves no state (an unsubscribe to or from someone unknown).
		st.Write = cur != nil
		st.Push = visibleChange(cur, nil)
		return st
	}
	st.Item = &it
	st.Write = cur == nil || !equalItems(*cur, it)
	st.Push = visibleChange(cur, &it)
	return st
}

func clone(it storage.RosterItem) storage.RosterItem {
	it.Groups = slices.Clone(it.Groups)
	return it
}

func equalItems(a, b storage.RosterItem) bool {
	return a.Contact == b.Contact && a.Name == b.Name && slices.Equal(a.Groups, b.Groups) &&
		a.Subscription == b.Subscription && a.AskOut == b.AskOut && a.PendingIn == b.PendingIn &&
		a.PendingInStatus == b.PendingInStatus && a.Approved == b.Approved && a.Hidden == b.Hidden
}

// visibleChange reports whether the roster item a client would see differs
// between a and b (nil or Hidden: no item).
func visibleChange(a, b *storage.RosterItem) bool {
	av, bv := a != nil && !a.Hidden, b != nil && !b.Hidden
	if av != bv {
		return true
	}
	if !av {
		return false
	}
	return a.Name != b.Name || !slices.Equal(a.Groups, b.Groups) || a.Subscription != b.Subscription ||
		a.AskOut != b.AskOut || a.Approved != b.Approved
}
