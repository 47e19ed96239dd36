package xmppsrv

import (
	"fmt"
	"io"
	"sync/atomic"
)

// Metrics are the live figures of the XMPP edge. All fields are updated
// atomically; WriteOpenMetrics renders them.
type Metrics struct {
	Connections    atomic.Int64 // open TCP connections (gauge)
	Bound          atomic.Int64 // bound sessions (gauge)
	Logins         atomic.Int64 // successful authentications
	AuthFailures   atomic.Int64 // failed authentications
	Throttled      atomic.Int64 // logins refused by the failed-login throttle
	ReadWaits      atomic.Int64 // reads held back because a client sent over Config.ReadRate
	StanzasIn      atomic.Int64 // stanzas received from clients
	StanzasOut     atomic.Int64 // stanzas queued to clients
	QueueDrops     atomic.Int64 // stanzas not queued because a client was too slow
	SlowClients    atomic.Int64 // clients disconnected for not reading
	StreamErrors   atomic.Int64 // streams closed with a stream error
	Offline        atomic.Int64 // messages stored for offline users
	Archived       atomic.Int64 // messages archived
	ArchiveBatches atomic.Int64 // archive transactions
	ArchiveNanos   atomic.Int64 // time spent in archive transactions
}

// WriteOpenMetrics writes the figures in the OpenMetrics text format.
func (m *Metrics) WriteOpenMetrics(w io.Writer) error {
	type row struct {
		name, kind, help string
		v                int64
	}
	rows := []row{
		{"parley_xmpp_connections", "gauge", "Open XMPP client connections.", m.Connections.Load()},
		{"parley_xmpp_sessions", "gauge", "Bound XMPP sessions (resources).", m.Bound.Load()},
		{"parley_xmpp_logins", "counter", "Successful SASL authentications.", m.Logins.Load()},
		{"parley_xmpp_auth_failures", "counter", "Failed SASL authentications.", m.AuthFailures.Load()},
		{"parley_xmpp_logins_throttled", "counter", "Logins refused after too many failures.", m.Throttled.Load()},
		{"parley_xmpp_read_waits", "counter", "Reads held back because a client sent faster than its read rate.", m.ReadWaits.Load()},
		{"parley_xmpp_stanzas_in", "counter", "Stanzas received from clients.", m.StanzasIn.Load()},
		{"parley_xmpp_stanzas_out", "counter", "Stanzas queued for clients.", m.StanzasOut.Load()},
		{"parley_xmpp_queue_drops", "counter", "Stanzas not queued because the client was too slow.", m.QueueDrops.Load()},
		{"parley_xmpp_slow_clients", "counter", "Clients disconnected for not reading.", m.SlowClients.Load()},
		{"parley_xmpp_stream_errors", "counter", "Streams closed with a stream error.", m.StreamErrors.Load()},
		{"parley_xmpp_offline_stored", "counter", "Messages stored for offline users.", m.Offline.Load()},
		{"parley_archive_messages", "counter", "Message copies archived.", m.Archived.Load()},
		{"parley_archive_batches", "counter", "Archive transactions (each one fsync).", m.ArchiveBatches.Load()},
		{"parley_archive_seconds", "counter", "Time spent in archive transactions, in seconds.", m.ArchiveNanos.Load() / 1e9},
	}
	for _, r := range rows {
		name := r.name
		if r.kind == "counter" {
			fmt.Fprintf(w, "# TYPE %s counter\n# HELP %s %s\n%s_total %d\n", name, name, r.help, name, r.v)
		} else {
			fmt.Fprintf(w, "# TYPE %s gauge\n# HELP %s %s\n%s %d\n", name, name, r.help, name, r.v)
		}
	}
	_, err := io.WriteString(w, "# EOF\n")
	return err
}
