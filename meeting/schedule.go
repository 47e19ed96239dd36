package meeting

import (
	"fmt"
	"strings"
	"time"

	"github.com/teambition/rrule-go"
)

// Bounds on schedules: they keep every computation over a rule short
// (rrule iterates occurrence by occurrence) and catch typos early.
const (
	maxDuration = 31 * 24 * time.Hour // of one occurrence
	maxCount    = 5000                // COUNT
	maxHorizon  = 100 * 365 * 24 * time.Hour
)

// location returns the schedule's zone.
func (sc *Schedule) location() (*time.Location, error) {
	if sc.TimeZone == "" || sc.TimeZone == "UTC" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(sc.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("%w: unknown time zone %q", ErrBadSchedule, sc.TimeZone)
	}
	return loc, nil
}

// rule parses the recurrence, anchored at Start in the schedule's zone,
// with UNTIL capped at maxHorizon so that no computation runs for ever
// (a rule that never matches would otherwise search without end). It
// returns nil for a one-off, and whether the rule itself ends (COUNT or
// UNTIL).
func (sc *Schedule) rule() (r *rrule.RRule, ends bool, err error) {
	text := strings.TrimSpace(sc.RRule)
	if text == "" {
		return nil, true, nil
	}
	text = strings.TrimPrefix(text, "RRULE:")
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadRRule, sc.RRule, fmt.Sprintf(format, a...))
	}
	for _, part := range strings.Split(text, ";") {
		if k, _, _ := strings.Cut(part, "="); strings.EqualFold(k, "DTSTART") {
			return nil, false, bad("give the start as the schedule's start, not DTSTART")
		}
	}
	loc, err := sc.location()
	if err != nil {
		return nil, false, err
	}
	opt, err := rrule.StrToROptionInLocation(text, loc)
	if err != nil {
		return nil, false, bad("%v", err)
	}
	switch opt.Freq {
	case rrule.DAILY, rrule.WEEKLY, rrule.MONTHLY, rrule.YEARLY:
	default:
		return nil, false, bad("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
	}
	if opt.Count < 0 || opt.Count > maxCount {
		return nil, false, bad("COUNT must be between 1 and %d", maxCount)
	}
	if opt.Interval > 1000 {
		return nil, false, bad("INTERVAL is too large")
	}
	start := sc.Start.In(loc).Truncate(time.Second)
	ends = opt.Count > 0 || !opt.Until.IsZero()
	if !opt.Until.IsZero() && opt.Until.Before(start) {
		return nil, false, bad("UNTIL is before the start")
	}
	horizon := start.Add(maxHorizon)
	if opt.Until.IsZero() || opt.Until.After(horizon) {
		opt.Until = horizon
	}
	opt.Dtstart = start
	r, err = rrule.NewRRule(*opt)
	if err != nil {
		return nil, false, bad("%v", err)
	}
	return r, ends, nil
}

// Validate checks the schedule: both times set, End after Start and at
// most 31 days later, a known time zone, and a recurrence rule that
// parses, has an allowed FREQ and matches at least once.
func (sc *Schedule) Validate() error {
	if sc.Start.IsZero() || sc.End.IsZero() {
		return fmt.Errorf("%w: start and end are required", ErrBadSchedule)
	}
	if !sc.End.After(sc.Start) {
		return fmt.Errorf("%w: the end must be after the start", ErrBadSchedule)
	}
	if sc.End.Sub(sc.Start) > maxDuration {
		return fmt.Errorf("%w: one occurrence may last at most 31 days", ErrBadSchedule)
	}
	if _, err := sc.location(); err != nil {
		return err
	}
	r, _, err := sc.rule()
	if err != nil {
		return err
	}
	if r != nil && r.After(sc.Start.Add(-time.Second), true).IsZero() {
		return fmt.Errorf("%w %q: the rule never matches", ErrBadRRule, sc.RRule)
	}
	return nil
}

// Ends returns when the last occurrence ends, and false if the schedule
// repeats for ever.
func (sc *Schedule) Ends() (time.Time, bool) {
	r, ends, err := sc.rule()
	if err != nil {
		return sc.End, true
	}
	if r == nil {
		return sc.End, true
	}
	if !ends {
		return time.Time{}, false
	}
	last := r.Before(r.GetUntil().Add(time.Second), true)
	if last.IsZero() {
		return sc.End, true
	}
	return last.Add(sc.End.Sub(sc.Start)), true
}

// Next returns the occurrence in progress at now, or the next one after
// it; ok is false when no occurrence remains.
func (sc *Schedule) Next(now time.Time) (start, end time.Time, ok bool) {
	d := sc.End.Sub(sc.Start)
	r, _, err := sc.rule()
	if err != nil || r == nil {
		if sc.End.After(now) {
			return sc.Start, sc.End, true
		}
		return time.Time{}, time.Time{}, false
	}
	// An occurrence that started before now and is still running counts.
	s := r.After(now.Add(-d), false)
	if s.IsZero() {
		return time.Time{}, time.Time{}, false
	}
	return s, s.Add(d), true
}

// ended reports whether the schedule is over at now.
func (sc *Schedule) ended(now time.Time) bool {
	end, ok := sc.Ends()
	return ok && !now.Before(end)
}
