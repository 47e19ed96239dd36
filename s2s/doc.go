// Package s2s is Parley's federation: server-to-server XMPP streams
// (RFC 6120) that carry stanzas between the local domains and other
// servers, so users add contacts on other domains and chat with them as
// with local ones.
//
// # Streams
//
// Outbound, a Server finds the remote domain's server through
// Config.Override, else DNS SRV (_xmpps-server._tcp for direct TLS with
// ALPN "xmpp-server", XEP-0368, then _xmpp-server._tcp for STARTTLS),
// else the domain itself on port 5269. Streams are always encrypted. It
// authenticates with SASL EXTERNAL (XEP-0178) when the peer accepts its
// certificate, and with Server Dialback (XEP-0220, keys per XEP-0185)
// otherwise, unless Config.Policy is CertOnly. One stream per pair of
// local and remote domain carries stanzas in order; it closes after
// Config.IdleTimeout without traffic.
//
// Inbound (Serve, ServeTLS), it offers STARTTLS (required), then SASL
// EXTERNAL when the peer's certificate verifies against Config.RootCAs for
// the domain it claims, and dialback. A dialback key is checked with the
// authoritative server of the claimed domain, found through DNS like any
// other, so a peer that is not authoritative for the domain, or sends a
// wrong key, gets type='invalid'; a claim for a domain not served here
// gets item-not-found. Further domains may be piggybacked on a stream;
// each is verified on its own. A stanza is accepted only when its 'from'
// is on a domain the stream proved and its 'to' on a local domain for
// which it proved it; anything else ends the stream with a stream error.
//
// # Delivery
//
// Send never blocks on the network: stanzas wait in a bounded queue while
// the stream is established. When that fails every queued stanza comes
// back to its sender through Local.Deliver as an error stanza:
// remote-server-not-found when the server cannot be found, refuses the
// connection or our authentication, or is not allowed by Config.Allow and
// Config.Deny; remote-server-timeout when it does not answer within
// Config.ConnectTimeout. Stanzas to local domains never leave.
//
// Stream management (XEP-0198, acknowledgements without resumption) runs
// on every stream whose receiving server offers it, as Parley and
// Prosody do: the sender asks for an acknowledgement after each batch,
// and when a stream breaks the stanzas the peer had not acknowledged go
// again, in order, on the next stream (once; if that fails too they come
// back to their senders as above). Delivery is then at least once: an
// acknowledgement lost with the stream makes a stanza arrive twice. With a
// peer that does not offer it, what was written to a stream that breaks
// can be lost, as in plain RFC 6120. Inbound, the feature is offered
// after TLS and enabled only once the peer has authenticated, and the
// last acknowledgement is sent before the stream closes, when the peer
// closes it or when Shutdown ends it with system-shutdown, so nothing
// that was delivered is sent again or bounced.
//
// The stanza size, authentication and write timeouts are those of client
// streams unless set here; the read rate (Config.ReadRate) is a stream's
// own, eight times a client's by default, as one stream carries many
// users.
//
// *xmppsrv.Server is the Local; parley.Server wires the two together from
// parley.Config.Federation.
package s2s
