package lottery

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/lottery/fair"
	"github.com/promoflow/promoflow/schemas"
)

//go:embed draw.lua
var drawLua string

var drawScript = redis.NewScript(drawLua)

func init() { scripts = append(scripts, drawScript) }

// DrawRecord is a committed draw as Redis keeps it: everything its results
// are built from, so that re-publishing it yields the same records.
type DrawRecord struct {
	Trigger      string       `json:"trigger"`
	EventID      string       `json:"event_id,omitempty"`
	DrawnAtMs    int64        `json:"drawn_at_ms"`
	Participants int64        `json:"participants"`
	Digest       string       `json:"digest"`
	Prizes       string       `json:"prizes"`
	Awards       []fair.Award `json:"awards"`
}

// seeds caches seeds by activity: once set in Redis a seed never changes.
type seeds struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Seed returns the activity's secret seed, creating it (32 random bytes)
// if it has none. Whoever creates it first wins; every caller gets the
// same seed back.
func (s *Store) Seed(ctx context.Context, activity string) ([]byte, error) {
	s.seedsOnce.Do(func() { s.seeds = &seeds{m: map[string][]byte{}} })
	s.seeds.mu.Lock()
	seed, ok := s.seeds.m[activity]
	s.seeds.mu.Unlock()
	if ok {
		return seed, nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("creating seed of activity %s: %w", activity, err)
	}
	k := s.key(activity, "seed")
	pipe := s.rdb.TxPipeline()
	pipe.SetNX(ctx, k, hex.EncodeToString(fresh), 0)
	get := pipe.Get(ctx, k)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading seed of activity %s: %w", activity, err)
	}
	seed, err := hex.DecodeString(get.Val())
	if err != nil || len(seed) != 32 {
		return nil, fmt.Errorf("reading seed of activity %s: stored seed is malformed", activity)
	}
	s.seeds.mu.Lock()
	s.seeds.m[activity] = seed
	s.seeds.mu.Unlock()
	return seed, nil
}

// CommittedAt returns when the activity's commitment was first published,
// recording now if it was not yet.
func (s *Store) CommittedAt(ctx context.Context, def *schemas.ActivityDefined, now time.Time) (time.Time, error) {
	k := s.key(def.ActivityID, "committed")
	pipe := s.rdb.TxPipeline()
	pipe.SetNX(ctx, k, now.UnixMilli(), 0)
	get := pipe.Get(ctx, k)
	if _, err := pipe.Exec(ctx); err != nil {
		return time.Time{}, fmt.Errorf("recording commitment of activity %s: %w", def.ActivityID, err)
	}
	ms, err := get.Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("recording commitment of activity %s: %w", def.ActivityID, err)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// drawOp runs one step of draw.lua and returns the stored record, if any.
func (s *Store) drawOp(ctx context.Context, def *schemas.ActivityDefined, fenceField string, epoch int64, op string, rec []byte) (*DrawRecord, error) {
	a := def.ActivityID
	keys := []string{s.key(a, "fence"), s.key(a, "state"), s.key(a, "draw")}
	var res []string
	err := s.retryNoScript(ctx, func() error {
		var err error
		res, err = drawScript.EvalSha(ctx, s.rdb, keys, fenceField, epoch, op, string(rec), s.expireAt(def).Unix()).StringSlice()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("running draw script (%s) for activity %s: %w", op, a, err)
	}
	switch {
	case len(res) == 1 && res[0] == "fenced":
		return nil, fmt.Errorf("draw of activity %s: %w", a, stream.ErrFenced)
	case len(res) == 2 && res[0] == "drawn":
		var d DrawRecord
		if err := json.Unmarshal([]byte(res[1]), &d); err != nil {
			return nil, fmt.Errorf("reading draw record of activity %s: %w", a, err)
		}
		return &d, nil
	case len(res) == 1:
		return nil, nil
	}
	return nil, fmt.Errorf("running draw script (%s) for activity %s: unexpected reply %q", op, a, res)
}

// Draw draws the activity once: it closes participation, reads the final
// participants, picks the winners with fair.Draw and commits the record.
// If the activity was drawn before (by this or an earlier owner, or by a
// crashed attempt that committed) it returns that record unchanged.
func (s *Store) Draw(ctx context.Context, def *schemas.ActivityDefined, fenceField string, epoch int64, trigger, eventID string, now time.Time) (*DrawRecord, error) {
	if rec, err := s.drawOp(ctx, def, fenceField, epoch, "close", nil); err != nil || rec != nil {
		return rec, err
	}
	seed, err := s.Seed(ctx, def.ActivityID)
	if err != nil {
		return nil, err
	}
	users, err := s.Participants(ctx, def.ActivityID)
	if err != nil {
		return nil, err
	}
	sorted := fair.Normalize(users)
	tiers := make([]fair.Tier, len(def.Prizes))
	for i, t := range def.Prizes {
		tiers[i] = fair.Tier{ID: t.TierID, Stock: t.Stock}
	}
	rec := &DrawRecord{
		Trigger:      trigger,
		EventID:      eventID,
		DrawnAtMs:    now.UnixMilli(),
		Participants: int64(len(sorted)),
		Digest:       fair.Digest(sorted),
		Prizes:       FormatPrizes(def.Prizes),
		Awards:       fair.Draw(seed, def.ActivityID, sorted, tiers),
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding draw record of activity %s: %w", def.ActivityID, err)
	}
	stored, err := s.drawOp(ctx, def, fenceField, epoch, "commit", b)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		return nil, errors.New("committing draw: no record returned")
	}
	return stored, nil
}

// DrawState reports whether the activity was drawn and whether its
// results were published (acknowledged by Kafka after a scheduled draw).
func (s *Store) DrawState(ctx context.Context, activity string) (drawn, published bool, err error) {
	v, err := s.rdb.HMGet(ctx, s.key(activity, "state"), "drawn", "published").Result()
	if err != nil {
		return false, false, fmt.Errorf("reading draw state of activity %s: %w", activity, err)
	}
	return v[0] != nil, v[1] != nil, nil
}

// MarkPublished notes that a draw's results were acknowledged.
func (s *Store) MarkPublished(ctx context.Context, def *schemas.ActivityDefined, fenceField string, epoch int64) error {
	_, err := s.drawOp(ctx, def, fenceField, epoch, "published", nil)
	return err
}

// Participants returns the activity's participants (unsorted), reading the
// set in slices so that a million members do not hold Redis at once.
func (s *Store) Participants(ctx context.Context, activity string) ([]string, error) {
	k := s.key(activity, "users")
	n, err := s.rdb.SCard(ctx, k).Result()
	if err != nil {
		return nil, fmt.Errorf("reading participants of activity %s: %w", activity, err)
	}
	users := make([]string, 0, n)
	var cursor uint64
	for {
		page, next, err := s.rdb.SScan(ctx, k, cursor, "", 20000).Result()
		if err != nil {
			return nil, fmt.Errorf("reading participants of activity %s: %w", activity, err)
		}
		users = append(users, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	// SSCAN may return a member more than once; Normalize removes repeats.
	return users, nil
}

// Joined returns how many participants the activity has.
func (s *Store) Joined(ctx context.Context, activity string) (int64, error) {
	return s.rdb.SCard(ctx, s.key(activity, "users")).Result()
}
