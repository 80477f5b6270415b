package notify

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

var (
	//go:embed reserve.lua
	reserveLua    string
	reserveScript = redis.NewScript(reserveLua)
	//go:embed mark.lua
	markLua    string
	markScript = redis.NewScript(markLua)
)

// Cap is a frequency cap: at most Max notifications of any campaigns to
// one user within Window.
type Cap struct {
	Window time.Duration `yaml:"window" json:"window"`
	Max    int           `yaml:"max" json:"max"`
}

// Store keeps the fan-out state in Redis:
//
//	<prefix>:ntf:{<campaign>}:c  hash: the campaign (crowd, template, status,
//	                             planned totals, progress counters, the
//	                             planner's step claims step:<n>, and d:<seq>
//	                             for every shard done)
//	<prefix>:ntf:u:{<user>}      hash: campaign -> what became of it for this
//	                             user (sent, capped, failed, or reserved by a
//	                             shard), the record that makes a send
//	                             exactly-once per campaign and the caps work
//	                             across campaigns
//
// Both expire Keep after their last write. One script call reserves a
// whole shard and one marks it; each user's keys carry the user as a hash
// tag.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	keep   time.Duration
	lease  time.Duration
	caps   []Cap
	now    func() time.Time
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithKeyPrefix sets the prefix of every key (default "pf").
func WithKeyPrefix(p string) StoreOption { return func(s *Store) { s.prefix = p } }

// WithKeep sets how long a user's record of a campaign, and a campaign's
// state, are kept after their last write (default 8 days). It must outlast
// notify.shards' retention, so that a shard replayed from the topic finds
// its users already sent, and the longest cap window.
func WithKeep(d time.Duration) StoreOption { return func(s *Store) { s.keep = d } }

// WithLease sets how long a reservation holds a user for a shard whose
// sender stopped answering (default 5 minutes): a longer send is not
// expected, and after it another sender may take the user over.
func WithLease(d time.Duration) StoreOption { return func(s *Store) { s.lease = d } }

// WithCaps sets the frequency caps across campaigns (default none).
func WithCaps(caps ...Cap) StoreOption { return func(s *Store) { s.caps = caps } }

// WithClock sets the store's clock (tests).
func WithClock(now func() time.Time) StoreOption { return func(s *Store) { s.now = now } }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts ...StoreOption) *Store {
	s := &Store{rdb: rdb, prefix: "pf", keep: 8 * 24 * time.Hour, lease: 5 * time.Minute, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Load caches the scripts in Redis (EVALSHA needs them).
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{reserveScript, markScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading notification scripts: %w", err)
		}
	}
	return nil
}

func (s *Store) campaignKey(campaign string) string { return s.prefix + ":ntf:{" + campaign + "}:c" }
func (s *Store) userKey(user string) string         { return s.prefix + ":ntf:u:{" + user + "}" }

// shardKeys are the keys of a shard's script calls: the campaign's hash,
// then each user's.
func (s *Store) shardKeys(campaign string, users []string) []string {
	keys := make([]string, 0, len(users)+1)
	keys = append(keys, s.campaignKey(campaign))
	for _, u := range users {
		keys = append(keys, s.userKey(u))
	}
	return keys
}

// Reservation codes, one per user of a shard (reserve.lua).
const (
	codeReserved = 'R'
	codeSent     = 'S'
	codeCapped   = 'C'
	codeFailed   = 'F'
	codeBusy     = 'B'
)

// reserve decides each user of shard seq and reserves those to send now.
// It returns one code per user.
func (s *Store) reserve(ctx context.Context, campaign string, seq, epoch int64, users []string) (string, error) {
	keys := s.shardKeys(campaign, users)
	args := make([]any, 0, 7+2*len(s.caps))
	args = append(args, campaign, seq, epoch, s.now().UnixMilli(), s.lease.Milliseconds(), s.keep.Milliseconds(), len(s.caps))
	for _, c := range s.caps {
		args = append(args, c.Window.Milliseconds(), c.Max)
	}
	var codes string
	err := stream.RetryNoScript(ctx, s.Load, func() error {
		var err error
		codes, err = reserveScript.EvalSha(ctx, s.rdb, keys, args...).Text()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reserving shard %s: %w", schemas.NotifyShardID(campaign, seq), err)
	}
	if codes == "X" {
		return "", ErrCancelled
	}
	if len(codes) != len(users) {
		return "", fmt.Errorf("reserving shard %s: %d codes for %d users", schemas.NotifyShardID(campaign, seq), len(codes), len(users))
	}
	return codes, nil
}

// Outcomes of a reserved user's send (mark.lua).
const (
	outcomeSent     = "s"
	outcomeFailed   = "f"
	outcomeReleased = "x"
)

// markResult is what mark recorded.
type markResult struct{ Sent, Failed, Released, Lost int64 }

// mark records the outcome of each reserved user; done says the shard is
// complete (nothing released and nobody busy).
func (s *Store) mark(ctx context.Context, campaign string, seq, epoch int64, users, outcomes []string, done bool) (markResult, error) {
	keys := s.shardKeys(campaign, users)
	d := "0"
	if done {
		d = "1"
	}
	args := make([]any, 0, 6+len(outcomes))
	args = append(args, campaign, seq, epoch, s.now().UnixMilli(), s.keep.Milliseconds(), d)
	for _, o := range outcomes {
		args = append(args, o)
	}
	var r []int64
	err := stream.RetryNoScript(ctx, s.Load, func() error {
		var err error
		r, err = markScript.EvalSha(ctx, s.rdb, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		return markResult{}, fmt.Errorf("marking shard %s: %w", schemas.NotifyShardID(campaign, seq), err)
	}
	if len(r) != 4 {
		return markResult{}, fmt.Errorf("marking shard %s: unexpected reply %v", schemas.NotifyShardID(campaign, seq), r)
	}
	return markResult{r[0], r[1], r[2], r[3]}, nil
}

// claimStep claims planning step n of a campaign for the record at
// topic/partition@offset. It reports false when another record (a repeated
// request, or a duplicated bookmark) claimed the step first; the same
// record handled again (a redelivery) gets true, and plans the step again.
func (s *Store) claimStep(ctx context.Context, campaign string, step int64, record string) (bool, error) {
	key := s.campaignKey(campaign)
	field := "step:" + strconv.FormatInt(step, 10)
	var got *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, key, field, record)
		p.PExpire(ctx, key, s.keep)
		got = p.HGet(ctx, key, field)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("claiming step %d of campaign %s: %w", step, campaign, err)
	}
	return got.Val() == record, nil
}

// retryFailed hands step 0 of a campaign that failed to record, so that a
// new request plans it; it reports false for any other campaign.
func (s *Store) retryFailed(ctx context.Context, campaign, record string) (bool, error) {
	key := s.campaignKey(campaign)
	st, err := s.rdb.HGet(ctx, key, "status").Result()
	if errors.Is(err, redis.Nil) || (err == nil && st != StatusFailed) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading campaign %s: %w", campaign, err)
	}
	if err := s.rdb.HSet(ctx, key, "step:0", record).Err(); err != nil {
		return false, fmt.Errorf("claiming campaign %s again: %w", campaign, err)
	}
	return true, nil
}

// Campaign statuses.
const (
	StatusPlanning  = "planning"
	StatusPlanned   = "planned"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// ErrCancelled says a campaign was cancelled: nothing more is planned or
// sent for it.
var ErrCancelled = errors.New("campaign cancelled")

// Cancel stops a campaign: the planner plans no further step and the
// senders skip every shard not yet reserved (a shard being sent at that
// moment finishes). It returns the progress at the moment of the cancel.
// Cancelling twice is harmless; an unknown campaign is ErrUnknownCampaign.
func (s *Store) Cancel(ctx context.Context, campaign string) (Progress, error) {
	if _, err := s.Progress(ctx, campaign); err != nil {
		return Progress{}, err
	}
	key := s.campaignKey(campaign)
	if err := s.rdb.HSetNX(ctx, key, "cancelled", s.now().UnixMilli()).Err(); err != nil {
		return Progress{}, fmt.Errorf("cancelling campaign %s: %w", campaign, err)
	}
	return s.Progress(ctx, campaign)
}

// setCampaign writes fields of a campaign's hash.
func (s *Store) setCampaign(ctx context.Context, campaign string, fields map[string]any) error {
	key := s.campaignKey(campaign)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, fields)
		p.PExpire(ctx, key, s.keep)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording campaign %s: %w", campaign, err)
	}
	return nil
}

// Progress is what is known of a campaign.
type Progress struct {
	CampaignID string    `json:"campaign_id"`
	CrowdID    string    `json:"crowd_id"`
	Template   string    `json:"template"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason,omitempty"`
	Requested  time.Time `json:"requested_at"`
	// ShardsPlanned and UsersPlanned grow while planning; once Status is
	// planned they are the totals.
	ShardsPlanned int64 `json:"shards_planned"`
	UsersPlanned  int64 `json:"users_planned"`
	ShardsDone    int64 `json:"shards_done"`
	// Sent, Capped and Failed count users, each once.
	Sent   int64 `json:"sent"`
	Capped int64 `json:"capped"`
	Failed int64 `json:"failed"`
	// Retries counts shard attempts that failed and were retried.
	Retries int64 `json:"retries"`
	// Cancelled is when the campaign was cancelled (Status cancelled).
	Cancelled time.Time `json:"cancelled_at,omitzero"`
}

// Done reports whether every planned shard is done, or the campaign failed
// or was cancelled.
func (p Progress) Done() bool {
	return p.Status == StatusFailed || p.Status == StatusCancelled || (p.Status == StatusPlanned && p.ShardsDone >= p.ShardsPlanned)
}

// Settled counts the users decided so far (sent, capped or failed).
func (p Progress) Settled() int64 { return p.Sent + p.Capped + p.Failed }

// ErrUnknownCampaign is Progress's answer for a campaign Redis does not know.
var ErrUnknownCampaign = errors.New("unknown campaign")

// Progress reads a campaign's state.
func (s *Store) Progress(ctx context.Context, campaign string) (Progress, error) {
	key := s.campaignKey(campaign)
	vals, err := s.rdb.HMGet(ctx, key, "crowd", "template", "status", "reason", "requested_at", "shards_planned", "users_planned",
		"shards_done", "sent", "capped", "failed", "retries", "cancelled").Result()
	if err != nil {
		return Progress{}, fmt.Errorf("reading campaign %s: %w", campaign, err)
	}
	str := func(i int) string { v, _ := vals[i].(string); return v }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	known := false
	for _, v := range vals {
		known = known || v != nil
	}
	if !known {
		return Progress{}, fmt.Errorf("campaign %s: %w", campaign, ErrUnknownCampaign)
	}
	p := Progress{CampaignID: campaign, CrowdID: str(0), Template: str(1), Status: str(2), Reason: str(3),
		ShardsPlanned: num(5), UsersPlanned: num(6), ShardsDone: num(7), Sent: num(8), Capped: num(9), Failed: num(10), Retries: num(11)}
	if ms := num(4); ms > 0 {
		p.Requested = time.UnixMilli(ms).UTC()
	}
	if ms := num(12); ms > 0 {
		p.Status = StatusCancelled
		p.Cancelled = time.UnixMilli(ms).UTC()
	}
	return p, nil
}

// incr adds n to a campaign counter.
func (s *Store) incr(ctx context.Context, campaign, field string, n int64) error {
	return s.rdb.HIncrBy(ctx, s.campaignKey(campaign), field, n).Err()
}

// UserState returns what the store holds for user and campaign: "sent",
// "capped", "failed", "reserved" or "" (tests and `notify status --user`).
func (s *Store) UserState(ctx context.Context, campaign, user string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.userKey(user), campaign).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(v, "s|"):
		return "sent", nil
	case strings.HasPrefix(v, "c|"):
		return "capped", nil
	case strings.HasPrefix(v, "f|"):
		return "failed", nil
	case strings.HasPrefix(v, "r|"):
		return "reserved", nil
	}
	return v, nil
}

// markTimeout bounds the mark of a shard after its send.
const markTimeout = 10 * time.Second
