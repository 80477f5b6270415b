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

// The gift exchange keeps one activity's state in these keys (s.key(activity, part)):
//
//	gm     set of active members
//	gu     set of members who have not sent
//	gr     set of members who have not received
//	gs     hash sender -> receiver
//	gv     hash receiver -> sender
//	gi     hash member -> netstrings status, name, note, import_id
//	gd     hash "<app>\x00<event>" -> remembered decision (sends and member changes)
//	fence  hash "topic/partition" -> highest epoch seen
//
// gift.lua and gift_member.lua keep |gu| == |gr|, which is what lets the
// send step avoid dead ends (see gift.lua).

//go:embed gift.lua
var giftLua string

//go:embed gift_member.lua
var giftMemberLua string

var (
	giftScript       = redis.NewScript(giftLua)
	giftMemberScript = redis.NewScript(giftMemberLua)
)

func init() { scripts = append(scripts, giftScript, giftMemberScript) }

// Refusal reasons of member changes besides schemas.RejectNotAMember.
const (
	// RefuseMemberLocked refuses the removal of a member who has sent or
	// received a gift.
	RefuseMemberLocked = "member_locked"
	// RefuseWouldStrand refuses the removal of one of the last two members
	// who have neither sent nor received, once others have been matched:
	// the other one would be left with nobody to give to.
	RefuseWouldStrand = "would_strand"
	// RefuseUnknownAction refuses an action other than add, update, remove.
	RefuseUnknownAction = "unknown_action"
)

// maxGiftRun bounds the sends or member changes one script call decides,
// so that a call holds Redis for at most a few milliseconds.
const maxGiftRun = 500

// SendInput is one gift send handed to the atomic step.
type SendInput struct {
	AppID, EventID, UserID string
	// Precheck is the rejection reason found by the caller ("" = passed).
	Precheck string
}

// SendOutcome is the decision on one send.
type SendOutcome struct {
	Matched    bool
	ReceiverID string    // set when Matched
	Reason     string    // set when not Matched
	At         time.Time // when the decision was first made
	// Replayed is true when the decision was remembered from an earlier
	// delivery of the same event.
	Replayed bool
}

// MemberInput is one member change.
type MemberInput struct {
	AppID, EventID, UserID string
	// Action is schemas.MemberAdd, MemberUpdate or MemberRemove.
	Action string
	// Name and Note replace the stored ones on update (and on an add that
	// makes the user a member); ImportID does too when not empty.
	Name, Note, ImportID string
}

// MemberOutcome is the member's record after the change, or the record as
// it stands when the change was Refused (with Reason).
type MemberOutcome struct {
	// Status is schemas.MemberActive or schemas.MemberRemoved (also for a
	// user who was never a member).
	Status               string
	Name, Note, ImportID string
	Refused              bool
	// Reason is why the change was refused: schemas.RejectNotAMember,
	// RefuseMemberLocked, RefuseWouldStrand or RefuseUnknownAction.
	Reason string
	At     time.Time // when the decision was first made
	// Replayed is true when the decision was remembered from an earlier
	// delivery of the same event.
	Replayed bool
}

// Send decides the gift sends of ONE activity in order: each sender who is
// a member and has not sent is matched at random with a member who has not
// received, never themselves. It runs one script call per run of at most
// 500 sends, all pipelined in one round trip. fenceField and epoch identify
// the caller's ownership of its partition (epoch 0 turns fencing off); the
// keys written expire at expireAt (zero: never; a time not after now is
// raised to now plus the decision TTL, so that it never deletes live
// state). It returns an error wrapping stream.ErrFenced if a newer owner
// has written.
func (s *Store) Send(ctx context.Context, activity, fenceField string, epoch int64, now, expireAt time.Time, in []SendInput) ([]SendOutcome, error) {
	if len(in) == 0 {
		return nil, nil
	}
	keys := []string{
		s.key(activity, "gm"), s.key(activity, "gu"), s.key(activity, "gr"),
		s.key(activity, "gs"), s.key(activity, "gv"), s.key(activity, "gd"),
		s.key(activity, "fence"),
	}
	items := make([][]any, len(in))
	for i, x := range in {
		items[i] = []any{decisionField(x.AppID, x.EventID), x.UserID, x.Precheck}
	}
	res, err := s.runGift(ctx, "gift", giftScript, keys, s.giftHead(fenceField, epoch, now, expireAt), items)
	if err != nil {
		return nil, fmt.Errorf("gift sends of activity %s: %w", activity, err)
	}
	out := make([]SendOutcome, len(in))
	for i, r := range res {
		if out[i], err = parseSendDecision(r.decision); err != nil {
			return nil, fmt.Errorf("gift send %s of activity %s: %w", in[i].EventID, activity, err)
		}
		out[i].Replayed = r.replayed
	}
	return out, nil
}

// Members applies member changes of ONE activity in order, like Send (same
// runs, fencing and expiry). An add keeps an active member's record as it
// is (imports are idempotent); an update creates or edits; a remove is
// refused once the member has sent or received, and a removed member can
// be added again.
func (s *Store) Members(ctx context.Context, activity, fenceField string, epoch int64, now, expireAt time.Time, in []MemberInput) ([]MemberOutcome, error) {
	if len(in) == 0 {
		return nil, nil
	}
	keys := []string{
		s.key(activity, "gm"), s.key(activity, "gu"), s.key(activity, "gr"),
		s.key(activity, "gs"), s.key(activity, "gv"), s.key(activity, "gi"),
		s.key(activity, "gd"), s.key(activity, "fence"),
	}
	items := make([][]any, len(in))
	for i, x := range in {
		items[i] = []any{decisionField(x.AppID, x.EventID), x.UserID, x.Action, x.Name, x.Note, x.ImportID}
	}
	res, err := s.runGift(ctx, "gift_member", giftMemberScript, keys, s.giftHead(fenceField, epoch, now, expireAt), items)
	if err != nil {
		return nil, fmt.Errorf("gift members of activity %s: %w", activity, err)
	}
	out := make([]MemberOutcome, len(in))
	for i, r := range res {
		if out[i], err = parseMemberDecision(r.decision); err != nil {
			return nil, fmt.Errorf("gift member change %s of activity %s: %w", in[i].EventID, activity, err)
		}
		out[i].Replayed = r.replayed
	}
	return out, nil
}

// GiftState reads counts for reports and tests: active members, members
// who have not sent, members who have not received.
func (s *Store) GiftState(ctx context.Context, activity string) (members, unsent, unreceived int64, err error) {
	pipe := s.rdb.Pipeline()
	m := pipe.SCard(ctx, s.key(activity, "gm"))
	u := pipe.SCard(ctx, s.key(activity, "gu"))
	r := pipe.SCard(ctx, s.key(activity, "gr"))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, 0, fmt.Errorf("reading gift state of activity %s: %w", activity, err)
	}
	return m.Val(), u.Val(), r.Val(), nil
}

// GiftPairs returns sender -> receiver of every match, for tests and audits.
func (s *Store) GiftPairs(ctx context.Context, activity string) (map[string]string, error) {
	pairs, err := s.rdb.HGetAll(ctx, s.key(activity, "gs")).Result()
	if err != nil {
		return nil, fmt.Errorf("reading gift pairs of activity %s: %w", activity, err)
	}
	return pairs, nil
}

// decisionField names an event's remembered decision in gd.
func decisionField(app, event string) string { return app + "\x00" + event }

// giftHead returns the script arguments before the items: fence field,
// epoch, now (ms) and the keys' expiry (unix s, 0 = none).
func (s *Store) giftHead(fenceField string, epoch int64, now, expireAt time.Time) []any {
	return []any{fenceField, strconv.FormatInt(epoch, 10), strconv.FormatInt(now.UnixMilli(), 10),
		strconv.FormatInt(giftExpiry(now, expireAt, s.ttl), 10)}
}

// giftExpiry returns the unix second the keys expire at: 0 (never) for a
// zero expireAt; an expireAt not after now would delete the activity's live
// state (EXPIREAT in the past deletes), so it is raised to now + ttl, which
// outlives any redelivery of the event being decided.
func giftExpiry(now, expireAt time.Time, ttl time.Duration) int64 {
	if expireAt.IsZero() {
		return 0
	}
	if !expireAt.After(now) {
		expireAt = now.Add(ttl)
	}
	return expireAt.Unix()
}

// giftResult is one item's remembered decision as the script returned it.
type giftResult struct {
	decision string
	replayed bool
}

// runGift calls sc (called name in errors) once per run of at most maxGiftRun items, in order, all
// pipelined; each call gets keys, head and then the run's items' arguments.
func (s *Store) runGift(ctx context.Context, name string, sc *redis.Script, keys []string, head []any, items [][]any) ([]giftResult, error) {
	out := make([]giftResult, len(items))
	err := s.retryNoScript(ctx, func() error {
		pipe := s.rdb.Pipeline()
		var cmds []*redis.Cmd
		for start := 0; start < len(items); start += maxGiftRun {
			end := min(start+maxGiftRun, len(items))
			args := append([]any(nil), head...)
			for _, it := range items[start:end] {
				args = append(args, it...)
			}
			cmds = append(cmds, pipe.EvalSha(ctx, sc.Hash(), keys, args...))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			// Any failure fails the whole call, which the runtime retries:
			// decisions already made are remembered.
			return err
		}
		for c, cmd := range cmds {
			start := c * maxGiftRun
			n := min(maxGiftRun, len(items)-start)
			res, err := cmd.StringSlice()
			if err != nil {
				return fmt.Errorf("reading script result: %w", err)
			}
			if len(res) == 1 && res[0] == "fenced" {
				return stream.ErrFenced
			}
			if len(res) != 1+2*n || res[0] != "ok" {
				return fmt.Errorf("reading script result: %d values for %d items", len(res), n)
			}
			for j := 0; j < n; j++ {
				out[start+j] = giftResult{decision: res[2+2*j], replayed: res[1+2*j] == "dup"}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("running %s script: %w", name, err)
	}
	return out, nil
}

// parseSendDecision reads "s|<ms>|<receiver>" or "r|<ms>|<reason>".
func parseSendDecision(v string) (SendOutcome, error) {
	kind, at, rest, err := splitDecision(v)
	if err != nil {
		return SendOutcome{}, err
	}
	o := SendOutcome{At: at}
	switch {
	case kind == "s":
		o.Matched, o.ReceiverID = true, rest
	case kind == "r" && rest != "":
		o.Reason = rest
	default:
		return SendOutcome{}, fmt.Errorf("parsing remembered send decision %q: not a send decision", v)
	}
	return o, nil
}

// parseMemberDecision reads "m|<ms>|" followed by the netstrings status,
// name, note, import_id and refusal reason.
func parseMemberDecision(v string) (MemberOutcome, error) {
	kind, at, rest, err := splitDecision(v)
	if err != nil {
		return MemberOutcome{}, err
	}
	if kind != "m" {
		return MemberOutcome{}, fmt.Errorf("parsing remembered member decision %q: not a member decision", v)
	}
	f, err := decodeNetstrings(rest, 5)
	if err != nil {
		return MemberOutcome{}, fmt.Errorf("parsing remembered member decision %q: %w", v, err)
	}
	if f[0] != schemas.MemberActive && f[0] != schemas.MemberRemoved {
		return MemberOutcome{}, fmt.Errorf("parsing remembered member decision %q: unknown status %q", v, f[0])
	}
	return MemberOutcome{Status: f[0], Name: f[1], Note: f[2], ImportID: f[3], Refused: f[4] != "", Reason: f[4], At: at}, nil
}

// splitDecision splits "<kind>|<ms>|<rest>"; rest may hold any byte.
func splitDecision(v string) (kind string, at time.Time, rest string, err error) {
	parts := strings.SplitN(v, "|", 3)
	if len(parts) != 3 {
		return "", time.Time{}, "", fmt.Errorf("parsing remembered decision %q: malformed", v)
	}
	ms, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("parsing remembered decision %q: %w", v, err)
	}
	return parts[0], time.UnixMilli(ms).UTC(), parts[2], nil
}

// decodeNetstrings reads exactly n netstrings "<decimal length>:<bytes>"
// filling v.
func decodeNetstrings(v string, n int) ([]string, error) {
	out := make([]string, 0, n)
	for len(out) < n {
		colon := strings.IndexByte(v, ':')
		if colon <= 0 || colon > 10 {
			return nil, fmt.Errorf("netstring %d: no length", len(out)+1)
		}
		size := 0
		for _, c := range v[:colon] {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("netstring %d: bad length %q", len(out)+1, v[:colon])
			}
			size = size*10 + int(c-'0')
		}
		v = v[colon+1:]
		if size > len(v) {
			return nil, fmt.Errorf("netstring %d: length %d past the end", len(out)+1, size)
		}
		out = append(out, v[:size])
		v = v[size:]
	}
	if v != "" {
		return nil, fmt.Errorf("%d bytes after %d netstrings", len(v), n)
	}
	return out, nil
}
