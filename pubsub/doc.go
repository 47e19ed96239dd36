// Package pubsub is the logic of personal publish-subscribe services
// (PEP, XEP-0163): every user account is a pubsub service (XEP-0060)
// whose nodes hold avatars (XEP-0084), bookmarks (XEP-0402), OMEMO device
// lists and bundles (XEP-0384) and other private data (XEP-0223).
//
// The package knows nothing of XML or sessions. xmppsrv decodes a pubsub
// request, calls the Service and, from its result, builds the reply and
// sends the event notifications to the owner's resources, contacts and
// subscribers that XEP-0163 names.
//
// What it implements of XEP-0060: auto-create, publish with
// publish-options as preconditions, item retrieval (by id, max_items),
// retraction, node creation with configuration, configuration, deletion,
// purge, subscribe and unsubscribe, affiliations management for the
// whitelist model; access models open, presence, roster (the presence
// model: a personal service has no roster-group configuration) and
// whitelist. Items and nodes are kept in a storage.Pubsub.
package pubsub
