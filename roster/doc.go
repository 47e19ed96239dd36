// Package roster keeps users' contact lists: items, names and groups, the
// presence subscription state machine of RFC 6121, roster versions
// (XEP-0237 as folded into RFC 6121 2.6), the domain roster, and the
// parsing of what users type into the web panel's Add Contact box.
//
// The package knows nothing of XML. The XMPP edge (xmppsrv) decodes a
// roster get or set, or a subscription presence stanza, calls the Service,
// and turns the result back into stanzas: an Outcome says whether to route
// the stanza on to the contact, deliver it to the owner's resources, push a
// roster item to the owner's clients, or answer on the owner's behalf.
//
// # Subscription state machine
//
// OutboundStep and InboundStep are pure functions that apply the tables of
// RFC 6121 Appendix A to one stored storage.RosterItem, including
// pre-approval (RFC 6121 3.4). The Service wraps them with storage and a
// per-owner lock. A subscription request is stored as soon as it arrives
// (in a Hidden record when the requester is not in the roster, as Appendix
// A.1 asks for "None + Pending In"), so a user who was offline still gets
// it: Service.Pending lists unanswered requests at each login.
//
// # Domain roster
//
// With Config.DomainRoster, every chat-enabled user of the owner's mail
// domain and every alias of the domain appears in the owner's roster with
// subscription "both", aliases first (in Config.AliasGroup), then users (in
// Config.UsersGroup), named as the host's directory names them. This
// mutual subscription is the host's policy, not an agreement between two
// users: subscription stanzas between users of one domain are answered by
// the server (a request is approved at once) or change nothing, and
// presence flows within the domain whatever the rosters say
// (Service.PresenceTargets reports it with one flag rather than a JID per
// user). A user may still rename, regroup or remove a domain contact in
// their own roster; that is stored as a record that overrides the
// directory, and removal only hides the item.
//
// The roster version of a domain-roster user combines the store's version
// of their roster with a fingerprint of the domain's directory, so a new
// colleague or a changed display name reaches cached rosters too.
// Service.Version computes it without building the roster, which matters
// in a domain of thousands of users.
//
// # Quick start
//
//	dir := account.NewCache(host, time.Minute)
//	rs := roster.New(roster.Config{Store: store, Directory: dir, DomainRoster: true})
//	items, ver, err := rs.Get(ctx, jid.MustParse("alice@example.com"))
//
//	// The panel's Add Contact box:
//	name, addr, err := roster.ParseContact("John Doe <john@other.org>")
//	rs.Set(ctx, alice, addr, name, []string{"Partners"})
//	out, err := rs.Outbound(ctx, alice, addr, roster.Subscribe)
//	// out.Route: send <presence type='subscribe'/> to addr; out.Push: push it.
package roster
