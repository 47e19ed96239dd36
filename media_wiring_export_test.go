package parley

import "github.com/parleyhq/parley/media"

// RecordingSinkForTest is the sink the Server gives its SFU.
func RecordingSinkForTest(s *Server) media.RecordingSink { return recordingSink{s.bridge} }
