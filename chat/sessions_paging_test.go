package chat_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleyhq/parley/chat"
)

// TestConversationsBeforeScanCap: a session still open when one call has
// read chat.MaxSessionScan messages is left whole to the next page; a
// session longer than that is listed in parts, and nothing is skipped.
func TestConversationsBeforeScanCap(t *testing.T) {
	clk := &clock{time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	s := historyService(t, clk)
	ctx := context.Background()
	// An old session of 3 messages, a huge one of MaxSessionScan+5, and a
	// recent one of 2: the huge one does not fit in one call's scan.
	for i := range 3 {
		say(t, s, clk, alice, bob, fmt.Sprintf("old %d", i))
		clk.t = clk.t.Add(time.Second)
	}
	clk.t = clk.t.Add(3 * time.Hour)
	for i := range chat.MaxSessionScan + 5 {
		say(t, s, clk, alice, bob, fmt.Sprintf("huge %d", i))
		clk.t = clk.t.Add(time.Second)
	}
	clk.t = clk.t.Add(3 * time.Hour)
	for i := range 2 {
		say(t, s, clk, alice, bob, fmt.Sprintf("new %d", i))
		clk.t = clk.t.Add(time.Second)
	}

	var got []string
	total := 0
	before := ""
	for n := 0; n < 10; n++ {
		convs, next, err := s.ConversationsBefore(ctx, alice, bob, before, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range convs {
			got = append(got, fmt.Sprintf("%s:%d", c.Preview, c.Messages))
			total += c.Messages
		}
		if next == "" {
			break
		}
		before = next
	}
	// Page 1: "new" (the huge session is cut by the scan, so it waits);
	// page 2: the huge one's newest MaxSessionScan; page 3: its first 5
	// and "old".
	want := fmt.Sprintf("[new 0:2 huge 5:%d huge 0:5 old 0:3]", chat.MaxSessionScan)
	if fmt.Sprint(got) != want {
		t.Errorf("sessions %v, want %s", got, want)
	}
	if total != chat.MaxSessionScan+10 {
		t.Errorf("%d messages over the pages, want %d", total, chat.MaxSessionScan+10)
	}
}
