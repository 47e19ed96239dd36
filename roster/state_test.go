package roster

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/parleyhq/parley/storage"
)

// rec builds a stored record from a state written as in RFC 6121
// Appendix A ("None + Pending Out/In"), independently of State.set.
func rec(state string) storage.RosterItem {
	it := storage.RosterItem{Contact: "juliet@example.com"}
	base, pend, _ := strings.Cut(state, " + Pending ")
	switch base {
	case "To":
		it.Subscription = storage.SubTo
	case "From":
		it.Subscription = storage.SubFrom
	case "Both":
		it.Subscription = storage.SubBoth
	case "None":
	default:
		panic("bad state " + state)
	}
	switch pend {
	case "Out":
		it.AskOut = true
	case "In":
		it.PendingIn = true
	case "Out/In":
		it.AskOut, it.PendingIn = true, true
	}
	return it
}

// stateName reads the state back from the fields, independently of StateOf.
func stateName(it storage.RosterItem) string {
	s := map[storage.Subscription]string{storage.SubNone: "None", storage.SubTo: "To", storage.SubFrom: "From", storage.SubBoth: "Both"}[it.Subscription]
	switch {
	case it.AskOut && it.PendingIn:
		s += " + Pending Out/In"
	case it.AskOut:
		s += " + Pending Out"
	case it.PendingIn:
		s += " + Pending In"
	}
	return s
}

// appendixRow is one line of an Appendix A table: EXISTING STATE, ROUTE? or
// DELIVER?, NEW STATE ("" for "no state change").
type appendixRow struct {
	state string
	act   bool
	next  string
}

var allStates = []string{
	"None", "None + Pending Out", "None + Pending In", "None + Pending Out/In",
	"To", "To + Pending In", "From", "From + Pending Out", "Both",
}

// The tables of RFC 6121 Appendix A, row by row as the RFC prints them.
// Rows whose new state is "pre-approval" (A.2.3) keep their subscription
// state and set Approved; TestPreApproval follows them further.
var appendixA = []struct {
	section  string
	outbound bool
	typ      SubType
	rows     []appendixRow
}{
	{"A.2.1 Outbound Subscribe", true, Subscribe, []appendixRow{
		{"None", true, "None + Pending Out"},
		{"None + Pending Out", true, ""},
		{"None + Pending In", true, "None + Pending Out/In"},
		{"None + Pending Out/In", true, ""},
		{"To", true, ""},
		{"To + Pending In", true, ""},
		{"From", true, "From + Pending Out"},
		{"From + Pending Out", true, ""},
		{"Both", true, ""},
	}},
	{"A.2.2 Outbound Unsubscribe", true, Unsubscribe, []appendixRow{
		{"None", true, ""},
		{"None + Pending Out", true, "None"},
		{"None + Pending In", true, ""},
		{"None + Pending Out/In", true, "None + Pending In"},
		{"To", true, "None"},
		{"To + Pending In", true, "None + Pending In"},
		{"From", true, ""},
		{"From + Pending Out", true, "From"},
		{"Both", true, "From"},
	}},
	{"A.2.3 Outbound Subscribed", true, Subscribed, []appendixRow{
		{"None", false, "pre-approval"},
		{"None + Pending Out", false, "pre-approval"},
		{"None + Pending In", true, "From"},
		{"None + Pending Out/In", true, "From + Pending Out"},
		{"To", false, "pre-approval"},
		{"To + Pending In", true, "Both"},
		{"From", false, ""},
		{"From + Pending Out", false, ""},
		{"Both", false, ""},
	}},
	{"A.2.4 Outbound Unsubscribed", true, Unsubscribed, []appendixRow{
		{"None", false, ""},
		{"None + Pending Out", false, ""},
		{"None + Pending In", true, "None"},
		{"None + Pending Out/In", true, "None + Pending Out"},
		{"To", false, ""},
		{"To + Pending In", true, "To"},
		{"From", true, "None"},
		{"From + Pending Out", true, "None + Pending Out"},
		{"Both", true, "To"},
	}},
	{"A.3.1 Inbound Subscribe", false, Subscribe, []appendixRow{
		{"None", true, "None + Pending In"},
		{"None + Pending Out", true, "None + Pending Out/In"},
		{"None + Pending In", false, ""},
		{"None + Pending Out/In", false, ""},
		{"To", true, "To + Pending In"},
		{"To + Pending In", false, ""},
		{"From", false, ""},               // * auto-reply "subscribed"
		{"From + Pending Out", false, ""}, // *
		{"Both", false, ""},               // *
	}},
	{"A.3.2 Inbound Unsubscribe", false, Unsubscribe, []appendixRow{
		{"None", false, ""},
		{"None + Pending Out", false, ""},
		{"None + Pending In", true, "None"},
		{"None + Pending Out/In", true, "None + Pending Out"},
		{"To", false, ""},
		{"To + Pending In", true, "To"},
		{"From", true, "None"},
		{"From + Pending Out", true, "None + Pending Out"},
		{"Both", true, "To"},
	}},
	{"A.3.3 Inbound Subscribed", false, Subscribed, []appendixRow{
		{"None", false, ""},
		{"None + Pending Out", true, "To"},
		{"None + Pending In", false, ""},
		{"None + Pending Out/In", true, "To + Pending In"},
		{"To", false, ""},
		{"To + Pending In", false, ""},
		{"From", false, ""},
		{"From + Pending Out", true, "Both"},
		{"Both", false, ""},
	}},
	{"A.3.4 Inbound Unsubscribed", false, Unsubscribed, []appendixRow{
		{"None", false, ""},
		{"None + Pending Out", true, "None"},
		{"None + Pending In", false, ""},
		{"None + Pending Out/In", true, "None + Pending In"},
		{"To", true, "None"},
		{"To + Pending In", true, "None + Pending In"},
		{"From", false, ""},
		{"From + Pending Out", true, "From"},
		{"Both", true, "From"},
	}},
}

func hasFromName(s string) bool { return strings.HasPrefix(s, "From") || s == "Both" }

func TestAppendixA(t *testing.T) {
	for _, tab := range appendixA {
		if len(tab.rows) != len(allStates) {
			t.Fatalf("%s: %d rows", tab.section, len(tab.rows))
		}
		for i, r := range tab.rows {
			if r.state != allStates[i] {
				t.Fatalf("%s: row %d is %q", tab.section, i, r.state)
			}
			t.Run(tab.section+"/"+r.state, func(t *testing.T) {
				cur := rec(r.state)
				before := cloneItem(cur)
				var st Step
				if tab.outbound {
					st = OutboundStep(&cur, tab.typ)
				} else {
					st = InboundStep(&cur, tab.typ, "status")
				}
				if !reflect.DeepEqual(cur, before) {
					t.Fatalf("step modified its input: %+v", cur)
				}
				act := st.Deliver
				if tab.outbound {
					act = st.Route
					if st.Deliver {
						t.Error("outbound step set Deliver")
					}
				} else if st.Route {
					t.Error("inbound step set Route")
				}
				if act != r.act {
					t.Errorf("route/deliver = %v, want %v", act, r.act)
				}
				want, pre := r.next, r.next == "pre-approval"
				if want == "" || pre {
					want = r.state
				}
				if st.Item == nil {
					t.Fatalf("no record after the step, want %q", want)
				}
				if got := stateName(*st.Item); got != want {
					t.Errorf("new state %q, want %q", got, want)
				}
				if StateOf(*st.Item).String() != want {
					t.Errorf("StateOf = %v, want %q", StateOf(*st.Item), want)
				}
				if st.Item.Contact != cur.Contact || st.Item.Hidden {
					t.Errorf("record lost its identity: %+v", st.Item)
				}
				changed := want != r.state || pre
				if st.Write != changed {
					t.Errorf("Write = %v, want %v", st.Write, changed)
				}
				// Pending In is not part of the roster item clients see.
				visible := func(s string) string {
					return strings.Replace(strings.Replace(s, "Out/In", "Out", 1), " + Pending In", "", 1)
				}
				if push := visible(want) != visible(r.state) || pre; st.Push != push {
					t.Errorf("Push = %v, want %v", st.Push, push)
				}
				autoReply := tab.section == "A.3.1 Inbound Subscribe" && hasFromName(r.state)
				if (st.AutoReply == Subscribed) != autoReply || (st.AutoReply != 0 && st.AutoReply != Subscribed) {
					t.Errorf("AutoReply = %v, want subscribed: %v", st.AutoReply, autoReply)
				}
				// 3.1.5: presence follows an approval, the owner's own or
				// the server's auto-reply.
				sendPresence := autoReply || tab.typ == Subscribed && tab.outbound && r.act
				if st.SendPresence != sendPresence {
					t.Errorf("SendPresence = %v, want %v", st.SendPresence, sendPresence)
				}
				// 3.2.2, 3.3.3: unavailable goes to a contact who loses
				// its subscription to the owner.
				sendUnavail := (tab.typ == Unsubscribed && tab.outbound || tab.typ == Unsubscribe && !tab.outbound) &&
					hasFromName(r.state) && !hasFromName(want)
				if st.SendUnavailable != sendUnavail {
					t.Errorf("SendUnavailable = %v, want %v", st.SendUnavailable, sendUnavail)
				}
				if st.Item.Approved != pre {
					t.Errorf("Approved = %v, want %v", st.Item.Approved, pre)
				}
				if tab.typ == Subscribe && !tab.outbound && r.act && st.Item.PendingInStatus != "status" {
					t.Errorf("request status %q not kept", st.Item.PendingInStatus)
				}
			})
		}
	}
}

// RFC 6121 3.4 and the pre-approval rows of A.2.3 and A.2.4.
func TestPreApproval(t *testing.T) {
	for _, state := range []string{"None", "None + Pending Out", "To"} {
		t.Run("A.2.3 Outbound Subscribed/"+state+"/pre-approval", func(t *testing.T) {
			cur := rec(state)
			st := OutboundStep(&cur, Subscribed)
			if st.Route || !st.Write || !st.Push || st.Item == nil || !st.Item.Approved || stateName(*st.Item) != state {
				t.Fatalf("step = %+v item %+v", st, st.Item)
			}
			// Again: already pre-approved, nothing changes.
			again := OutboundStep(st.Item, Subscribed)
			if again.Route || again.Write || again.Push {
				t.Errorf("repeat: %+v", again)
			}
			// A.3.1 with a pre-approval: approved for the owner, not
			// delivered (3.1.3).
			in := InboundStep(st.Item, Subscribe, "hi")
			want := map[string]string{"None": "From", "None + Pending Out": "From + Pending Out", "To": "Both"}[state]
			if in.Deliver || in.AutoReply != Subscribed || !in.SendPresence || !in.Push || !in.Write {
				t.Errorf("inbound subscribe: %+v", in)
			}
			if got := stateName(*in.Item); got != want || in.Item.Approved || in.Item.PendingInStatus != "" {
				t.Errorf("after the request: %q %+v, want %q", got, in.Item, want)
			}
			// A.2.4 note [1]: unsubscribed cancels the pre-approval.
			cancel := OutboundStep(st.Item, Unsubscribed)
			if cancel.Route || !cancel.Write || !cancel.Push || cancel.Item.Approved || stateName(*cancel.Item) != state {
				t.Errorf("cancel: %+v %+v", cancel, cancel.Item)
			}
		})
	}
	t.Run("A.2.3 Outbound Subscribed/not in roster/pre-approval", func(t *testing.T) {
		st := OutboundStep(nil, Subscribed)
		if st.Route || !st.Write || !st.Push || st.Item == nil || !st.Item.Approved || st.Item.Hidden {
			t.Fatalf("step = %+v item %+v", st, st.Item)
		}
	})
	t.Run("A.2.4 Outbound Unsubscribed/not in roster", func(t *testing.T) {
		if st := OutboundStep(nil, Unsubscribed); st.Route || st.Write || st.Push || st.Item != nil {
			t.Fatalf("step = %+v", st)
		}
	})
}

// Records the owner never saw (Appendix A.1, "None + Pending In": no roster
// item until the owner approves).
func TestHiddenRecords(t *testing.T) {
	// A request from a stranger is kept, hidden, and delivered.
	st := InboundStep(nil, Subscribe, "let me in")
	if !st.Deliver || !st.Write || st.Push || st.Item == nil || !st.Item.Hidden || !st.Item.PendingIn || st.Item.PendingInStatus != "let me in" {
		t.Fatalf("request from a stranger: %+v %+v", st, st.Item)
	}
	req := *st.Item
	// Asked again: not delivered again, nothing stored.
	if again := InboundStep(&req, Subscribe, "again"); again.Deliver || again.Write || again.Push {
		t.Errorf("repeated request: %+v", again)
	}
	// Denied: routed, and the record goes.
	if deny := OutboundStep(&req, Unsubscribed); !deny.Route || !deny.Write || deny.Item != nil || deny.Push {
		t.Errorf("deny: %+v", deny)
	}
	// Withdrawn by the requester: delivered, and the record goes.
	if wd := InboundStep(&req, Unsubscribe, ""); !wd.Deliver || !wd.Write || wd.Item != nil || wd.Push {
		t.Errorf("withdrawn: %+v", wd)
	}
	// Approved: routed, and the contact joins the roster with "from".
	ok := OutboundStep(&req, Subscribed)
	if !ok.Route || !ok.Write || !ok.Push || ok.Item.Hidden || ok.Item.Subscription != storage.SubFrom || ok.Item.PendingIn {
		t.Errorf("approve: %+v %+v", ok, ok.Item)
	}
	// Subscribing back before answering shows the item too.
	back := OutboundStep(&req, Subscribe)
	if !back.Route || !back.Push || back.Item.Hidden || stateName(*back.Item) != "None + Pending Out/In" {
		t.Errorf("subscribe back: %+v %+v", back, back.Item)
	}
	// Stanzas from or to strangers that leave no state store nothing.
	for _, typ := range []SubType{Subscribed, Unsubscribe, Unsubscribed} {
		if st := InboundStep(nil, typ, ""); st.Deliver || st.Write || st.Item != nil {
			t.Errorf("inbound %v from a stranger: %+v", typ, st)
		}
	}
	if st := OutboundStep(nil, Unsubscribe); !st.Route || st.Write || st.Item != nil {
		t.Errorf("outbound unsubscribe to a stranger: %+v", st)
	}
	if st := OutboundStep(nil, Subscribe); !st.Route || !st.Write || !st.Push || stateName(*st.Item) != "None + Pending Out" {
		t.Errorf("outbound subscribe to a stranger: %+v", st)
	}
}

func TestStepKeepsNameAndGroups(t *testing.T) {
	cur := rec("None + Pending Out")
	cur.Name, cur.Groups = "Juliet", []string{"Capulets"}
	st := InboundStep(&cur, Subscribed, "")
	if st.Item.Name != "Juliet" || fmt.Sprint(st.Item.Groups) != "[Capulets]" {
		t.Fatalf("%+v", st.Item)
	}
	st.Item.Groups[0] = "x"
	if cur.Groups[0] != "Capulets" {
		t.Fatal("step shares the groups slice with its input")
	}
}

func TestStateOfIgnoresUndefinedFlags(t *testing.T) {
	for _, c := range []struct {
		it   storage.RosterItem
		want State
	}{
		{storage.RosterItem{Subscription: storage.SubTo, AskOut: true}, StateTo},
		{storage.RosterItem{Subscription: storage.SubFrom, PendingIn: true}, StateFrom},
		{storage.RosterItem{Subscription: storage.SubBoth, AskOut: true, PendingIn: true}, StateBoth},
	} {
		if got := StateOf(c.it); got != c.want {
			t.Errorf("StateOf(%+v) = %v, want %v", c.it, got, c.want)
		}
	}
}

func TestParseSubType(t *testing.T) {
	for _, typ := range []SubType{Subscribe, Subscribed, Unsubscribe, Unsubscribed} {
		got, err := ParseSubType(typ.String())
		if err != nil || got != typ {
			t.Errorf("ParseSubType(%q) = %v, %v", typ.String(), got, err)
		}
	}
	for _, s := range []string{"", "probe", "unavailable", "error", "Subscribe"} {
		if _, err := ParseSubType(s); err == nil {
			t.Errorf("ParseSubType(%q) accepted", s)
		}
	}
	if SubType(0).String() != "" {
		t.Error("zero SubType has a name")
	}
	if st := OutboundStep(nil, 0); st.Route || st.Write {
		t.Error("zero SubType did something")
	}
}
