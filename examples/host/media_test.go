package main

import (
	"io"
	"reflect"
	"testing"

	"github.com/parleyhq/parley/media"
)

func TestMediaFlags(t *testing.T) {
	o, err := parseFlags([]string{"-media-udp-addr", "127.0.0.1:7999", "-media-public-ip", "203.0.113.7, 198.51.100.2",
		"-stun", "stun:stun.example.com:3478", "-turn", "turn:turn.example.com:3478,turns:turn.example.com:443?transport=tcp",
		"-turn-secret", "s3cret"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.media.udpAddr != "127.0.0.1:7999" || o.media.disable {
		t.Errorf("media options: %+v", o.media)
	}
	if got := o.media.publicIPs(); !reflect.DeepEqual(got, []string{"203.0.113.7", "198.51.100.2"}) {
		t.Errorf("public IPs: %q", got)
	}
	want := []media.ICEServer{
		{URLs: []string{"stun:stun.example.com:3478"}},
		{URLs: []string{"turn:turn.example.com:3478", "turns:turn.example.com:443?transport=tcp"}, Secret: "s3cret"},
	}
	if got := o.media.iceServers(); !reflect.DeepEqual(got, want) {
		t.Errorf("ICE servers: %+v", got)
	}
	o, _ = parseFlags([]string{"-disable-media"}, io.Discard)
	if !o.media.disable || o.media.iceServers() != nil || mediaLine(nil) != "off (-disable-media)" {
		t.Errorf("-disable-media: %+v", o.media)
	}
}
