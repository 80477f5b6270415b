package producers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/schemas"
)

// TopicGrants is where the coupon processor publishes its decisions, which
// Issue reads back to report each user's outcome.
const TopicGrants = "coupon.grants"

// Issue outcomes.
const (
	IssueIssued  = "issued"
	IssueSkipped = "skipped"
	IssueFailed  = "failed"
)

// IssueOptions configures Issue.
type IssueOptions struct {
	// BatchID is the batch to issue coupons of. Required.
	BatchID string
	// IssueID names this issuance in its events and report; default
	// "<batch>-r<round>".
	IssueID string
	// Round separates deliberate re-issues: the same users, batch and round
	// give the same event ids, so submitting a file twice issues nothing
	// more; a new round issues again (within the per-user limit).
	Round int
	// Wait bounds how long Issue waits for the processor's decisions after
	// publishing; 0 returns once every event is acknowledged by Kafka.
	Wait time.Duration
	// Progress, if set, is called about every ProgressEvery (default 1s)
	// and once at the end.
	Progress      func(IssueProgress)
	ProgressEvery time.Duration
	// ClientOpts are extra franz-go options (TLS, SASL) for the client that
	// reads the decisions back; brokers passed to Issue are its seeds.
	ClientOpts []kgo.Opt
}

// IssueProgress is a snapshot of a running Issue.
type IssueProgress struct {
	Total, Acked, Decided int
	Elapsed               time.Duration
}

// IssueOutcome is what happened to one user.
type IssueOutcome struct {
	UserID, EventID string
	// Status is IssueIssued (granted now), IssueSkipped (rejected by a
	// rule: Reason is out_of_stock, user_limit_reached, ...; or decided by
	// an earlier submission of the same issue: already_granted,
	// already_rejected) or IssueFailed (not published, or no decision
	// within Wait).
	Status, Reason, CouponID string
}

// IssueReport is the outcome of every user of an Issue, in input order.
type IssueReport struct {
	Outcomes                []IssueOutcome
	Issued, Skipped, Failed int
	// SkippedBy and FailedBy count the reasons.
	SkippedBy, FailedBy map[string]int
	Elapsed             time.Duration
}

// IssueEventID is the event id of issuing batch to user in round: a hash,
// so it fits the envelope's 128 characters whatever the ids' lengths.
func IssueEventID(batch string, round int, user string) string {
	h := sha256.Sum256([]byte(batch + "\x00" + strconv.Itoa(round) + "\x00" + user))
	return "iss-" + hex.EncodeToString(h[:16])
}

// Issue publishes one coupon.issue.requested per user and, with Wait,
// reads coupon.grants until every user's decision is in. Issuance never
// exceeds the batch's stock or a user's limit: the coupon processor decides
// each issue like a claim and remembers it by event id, so a file
// submitted twice, or an event redelivered, issues nothing more. brokers
// are the seed brokers for reading the decisions. users must be distinct.
func Issue(ctx context.Context, p *Producer, brokers []string, users []string, opts IssueOptions) (*IssueReport, error) {
	if opts.BatchID == "" {
		return nil, errors.New("issuing coupons: no batch")
	}
	if opts.IssueID == "" {
		opts.IssueID = fmt.Sprintf("%s-r%d", opts.BatchID, opts.Round)
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	start := time.Now()
	rep := &IssueReport{Outcomes: make([]IssueOutcome, len(users)), SkippedBy: map[string]int{}, FailedBy: map[string]int{}}
	byEvent := make(map[string]int, len(users))
	for i, u := range users {
		id := IssueEventID(opts.BatchID, opts.Round, u)
		if _, dup := byEvent[id]; dup {
			return nil, fmt.Errorf("issuing coupons: user %q is listed twice", u)
		}
		byEvent[id] = i
		rep.Outcomes[i] = IssueOutcome{UserID: u, EventID: id}
	}

	// Where coupon.grants ends now: every decision of this issue comes later.
	var from map[int32]kgo.Offset
	if opts.Wait > 0 {
		ends, err := kadm.NewClient(p.cl).ListEndOffsets(ctx, TopicGrants)
		if err != nil {
			return nil, fmt.Errorf("issuing coupons: reading the end of %s: %w", TopicGrants, err)
		}
		from = map[int32]kgo.Offset{}
		ends.Each(func(o kadm.ListedOffset) { from[o.Partition] = kgo.NewOffset().At(o.Offset) })
		if len(from) == 0 {
			return nil, fmt.Errorf("issuing coupons: topic %s not found", TopicGrants)
		}
	}

	var acked, decided atomic.Int64
	stopProgress := progressLoop(ctx, opts, len(users), start, &acked, &decided)
	defer stopProgress()

	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		i := i
		p.PublishAsync(ctx, rep.Outcomes[i].EventID, time.Now(), schemas.IssueRequested{BatchID: opts.BatchID, UserID: u, IssueID: opts.IssueID}, func(err error) {
			defer wg.Done()
			acked.Add(1)
			if err != nil {
				mu.Lock()
				rep.Outcomes[i].Status, rep.Outcomes[i].Reason = IssueFailed, "publish: "+err.Error()
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	if opts.Wait > 0 {
		pending := 0
		for _, o := range rep.Outcomes {
			if o.Status == "" {
				pending++
			}
		}
		// Decisions made before this submission began were remembered from
		// an earlier one. (This labels the report only, and relies on the
		// processor's clock agreeing with this machine's; the guarantee
		// that nothing is issued twice does not.)
		if err := waitDecisions(ctx, brokers, opts.ClientOpts, from, start, opts.Wait, byEvent, rep, &mu, pending, &decided); err != nil {
			return nil, err
		}
	}
	for i := range rep.Outcomes {
		o := &rep.Outcomes[i]
		switch {
		case o.Status == "" && opts.Wait > 0:
			o.Status, o.Reason = IssueFailed, "no decision within "+opts.Wait.String()
		case o.Status == "":
			o.Status = "published" // not waited for
		}
		switch o.Status {
		case IssueIssued:
			rep.Issued++
		case IssueSkipped:
			rep.Skipped++
			rep.SkippedBy[o.Reason]++
		case IssueFailed:
			rep.Failed++
			rep.FailedBy[o.Reason]++
		}
	}
	rep.Elapsed = time.Since(start)
	stopProgress()
	return rep, nil
}

func progressLoop(ctx context.Context, opts IssueOptions, total int, start time.Time, acked, decided *atomic.Int64) func() {
	if opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	report := func() {
		opts.Progress(IssueProgress{Total: total, Acked: int(acked.Load()), Decided: int(decided.Load()), Elapsed: time.Since(start)})
	}
	wg.Go(func() {
		t := time.NewTicker(opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				report()
			}
		}
	})
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			report()
		})
	}
}

// waitDecisions reads coupon.grants from the given offsets until every
// pending event of the issue has its decision or wait passes.
func waitDecisions(ctx context.Context, brokers []string, clientOpts []kgo.Opt, from map[int32]kgo.Offset, since time.Time, wait time.Duration, byEvent map[string]int, rep *IssueReport, mu *sync.Mutex, pending int, decided *atomic.Int64) error {
	opts := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{TopicGrants: from})}, clientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var dec schemas.Decoder
	for pending > 0 && wctx.Err() == nil {
		fs := cl.PollFetches(wctx)
		fs.EachRecord(func(r *kgo.Record) {
			env, err := dec.Decode(r.Value)
			if err != nil || env.Type != schemas.TypeCouponGrantDecided {
				return
			}
			var g schemas.GrantDecided
			if env.DecodePayload(&g) != nil {
				return
			}
			i, ok := byEvent[g.ClaimEventID]
			if !ok {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			o := &rep.Outcomes[i]
			if o.Status != "" {
				return // a replayed decision (the same), or already failed
			}
			switch {
			case g.DecidedAt.Before(since):
				// Remembered from an earlier submission of the same users:
				// nothing was issued now.
				o.Status, o.Reason, o.CouponID = IssueSkipped, "already_"+g.Status, g.CouponID
			case g.Status == schemas.StatusGranted:
				o.Status, o.CouponID = IssueIssued, g.CouponID
			default:
				o.Status, o.Reason = IssueSkipped, g.Reason
			}
			pending--
			decided.Add(1)
		})
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}
