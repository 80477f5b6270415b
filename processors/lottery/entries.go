package lottery

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

//go:embed entry.lua
var entryLua string

var entryScript = redis.NewScript(entryLua)

func init() { scripts = append(scripts, entryScript) }

// EntryInput is one participation handed to the atomic step.
type EntryInput struct {
	AppID, EventID, UserID string
	// Precheck is the rejection reason found by PrecheckEntry, or "".
	Precheck string
	// Roll is the instant-win roll (fair.Roll); -1 for draws.
	Roll int64
}

// EntryOutcome is the decision on one participation.
type EntryOutcome struct {
	Accepted bool
	Reason   string
	// Tried is true for an accepted instant-win try; Tier is the tier won
	// ("" = lost) and Odds the odds in force.
	Tried bool
	Tier  string
	Odds  string
	At    time.Time
	// Replayed is true when the decision was remembered from an earlier
	// delivery of the same event.
	Replayed bool
}

// maxRun bounds the requests one script call decides, so that a call holds
// Redis for at most a few milliseconds.
const maxRun = 500

// Enter decides participations of one activity in order, one script call
// per maxRun of them, pipelined in one round trip. It returns an error
// wrapping stream.ErrFenced if a newer owner of the partition has written.
func (s *Store) Enter(ctx context.Context, def *schemas.ActivityDefined, fenceField string, epoch int64, now time.Time, in []EntryInput) ([]EntryOutcome, error) {
	if len(in) == 0 {
		return nil, nil
	}
	var out []EntryOutcome
	err := s.retryNoScript(ctx, func() error {
		var err error
		out, err = s.enter(ctx, def, fenceField, epoch, now, in)
		return err
	})
	return out, err
}

func (s *Store) enter(ctx context.Context, def *schemas.ActivityDefined, fenceField string, epoch int64, now time.Time, in []EntryInput) ([]EntryOutcome, error) {
	a := def.ActivityID
	keys := []string{s.key(a, "fence"), s.key(a, "state"), s.key(a, "users"), s.key(a, "joins"), s.key(a, "events"), s.key(a, "stock"), s.key(a, "won")}
	var tiers string
	if def.Kind == schemas.KindInstantWin {
		var b strings.Builder
		for i, t := range def.Prizes {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%d:%d", t.TierID, t.ProbabilityPPM, t.Stock)
		}
		tiers = b.String()
	}
	head := []any{fenceField, epoch, now.UnixMilli(), s.expireAt(def).Unix(), def.Kind, def.PerUserLimit, tiers}
	res, err := stream.EvalRuns(ctx, s.rdb, entryScript, keys, head, len(in), maxRun, func(i int) []any {
		e := in[i]
		return []any{e.AppID + "\x00" + e.EventID, e.UserID, e.Precheck, e.Roll}
	})
	if err != nil {
		return nil, fmt.Errorf("running entry script for activity %s: %w", a, err)
	}
	out := make([]EntryOutcome, 0, len(in))
	for _, r := range res {
		o, err := parseEntry(r[1])
		if err != nil {
			return nil, err
		}
		o.Replayed = r[0] == "dup"
		out = append(out, o)
	}
	return out, nil
}

// expireAt is when an activity's state may go: its decisions must outlive
// every redelivery (the decision TTL after the join window closes, or after
// the draw time when that is later).
func (s *Store) expireAt(def *schemas.ActivityDefined) time.Time {
	end := def.JoinUntil
	if def.DrawAt != nil && def.DrawAt.After(end) {
		end = *def.DrawAt
	}
	return end.Add(s.ttl)
}

// parseEntry reads "r|<reason>|<ms>", "a|<ms>" or "w|<ms>|<tier>|<odds>".
func parseEntry(s string) (EntryOutcome, error) {
	parts := strings.SplitN(s, "|", 4)
	bad := func() (EntryOutcome, error) {
		return EntryOutcome{}, fmt.Errorf("parsing remembered entry decision %q: malformed", s)
	}
	ms := func(v string) (time.Time, bool) {
		n, err := strconv.ParseInt(v, 10, 64)
		return time.UnixMilli(n).UTC(), err == nil
	}
	var o EntryOutcome
	var ok bool
	switch {
	case parts[0] == "r" && len(parts) == 3:
		o.Reason = parts[1]
		o.At, ok = ms(parts[2])
	case parts[0] == "a" && len(parts) == 2:
		o.Accepted = true
		o.At, ok = ms(parts[1])
	case parts[0] == "w" && len(parts) == 4:
		o.Accepted, o.Tried, o.Tier, o.Odds = true, true, parts[2], parts[3]
		o.At, ok = ms(parts[1])
	}
	if !ok {
		return bad()
	}
	return o, nil
}
