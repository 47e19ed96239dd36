// Package parley adds chat to an existing mail server: every user of the
// host's mail domains can log in with their mail address and password from
// any XMPP client (Pidgin, Thunderbird, eM Client, Gajim, Conversations),
// see who is online and chat; messages to an alias reach its online
// members.
//
// A host embeds Parley in four steps:
//
//  1. Implement Directory (who exists: users, aliases, display names,
//     whether a user has chat enabled) and Authenticator (check a
//     password). Implement SCRAMProvider too, and clients log in with
//     SCRAM instead of sending the password.
//  2. Call New with a Config naming the domains, the certificate and a
//     DataDir for the embedded store (or a storage.Store of your own,
//     proved with storage/storagetest).
//  3. Hand it listeners: ServeXMPP (port 5222, STARTTLS) and ServeXMPPTLS
//     (port 5223, direct TLS); mount Handler and MetricsHandler on the
//     host's HTTP mux.
//  4. On exit, call Shutdown: every stream is flushed and closed cleanly.
//
// By default every chat-enabled user of a domain is in every other user's
// roster, mutually subscribed, with the domain's aliases listed first
// (Config.DisableDomainRoster turns this off). Users who are not
// chat-enabled do not appear and cannot be messaged.
//
// Contacts on other domains and other XMPP servers (federation) are off
// until Config.Federation.Enabled is set; then ServeS2S (port 5269) and
// ServeS2STLS take other servers' connections, and users add and chat
// with remote contacts as with local ones (package s2s). The domains of
// one Server always talk to each other directly.
//
// Everything the users would miss (roster changes, offline messages, the
// vCard) is stored before it is acknowledged. Limits (stanza size, login
// failures, sessions per user, offline queue) have safe defaults and are
// set in Config. examples/host is a complete host; account/memdir is an
// in-memory Directory and Authenticator for tests and evaluation.
package parley
