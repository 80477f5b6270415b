package api

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// The campaign page and its API: GET /v1/campaigns lists the coupon batches
// and lottery activities the server knows, GET /v1/campaigns/{id} reads one
// campaign's live figures, and GET /campaigns is the page that polls them.
// Each source is optional; see CampaignSources.

// CampaignSources are what the campaign routes read. Every field is
// optional: a campaign's figures need Records (503 without it), and each of
// Stock, DLQ and Throughput, when missing or failing, leaves its part of
// the answer out and says why in CampaignDetail.Unavailable.
type CampaignSources struct {
	// Activities is the cache of lottery activities (a stream.View of
	// lottery.admin); nil lists coupon batches only.
	Activities *lottery.Activities
	// Records reads the figures from the system of record (the MySQL
	// sink).
	Records CampaignRecords
	// Stock reads how many coupons of a batch the coupon processor has
	// granted, from its Redis counter (coupon.Store).
	Stock StockReader
	// DLQ counts the records on the dead-letter topic (KafkaDLQ).
	DLQ DLQCounter
	// Throughput counts decisions per time bucket (the ClickHouse sink).
	Throughput sinks.ThroughputReader
	// CacheTTL is how long a campaign's figures are served from memory,
	// overriding the default of 1s; negative disables the cache. Requests
	// for a campaign arriving while its figures are being read wait for
	// that read instead of starting another.
	CacheTTL time.Duration
	// Timeout bounds each store read, overriding the default of 3s.
	Timeout time.Duration
}

// CampaignRecords reads a campaign's figures from the system of record.
// The MySQL sink (and the memory sink standing in for it) implements it.
type CampaignRecords interface {
	sinks.CampaignReader
	// EntryCounts and Draw are those of sinks.LotteryReader.
	EntryCounts(ctx context.Context, activityID string) (sinks.EntryCounts, error)
	Draw(ctx context.Context, activityID string) (*schemas.DrawCompleted, error)
}

// StockReader reads a coupon batch's stock taken. coupon.Store implements
// it over the processor's own counter.
type StockReader interface {
	Granted(ctx context.Context, batchID string) (int64, error)
}

// DLQCounter counts the records on the dead-letter topic.
type DLQCounter interface {
	Count(ctx context.Context) (int64, error)
}

// KafkaDLQ counts the records a topic retains: the sum over its partitions
// of the end offset minus the start offset (the dead-letter topic is
// written without transactions, so every offset is a record).
type KafkaDLQ struct {
	Admin *kadm.Client
	Topic string
}

// Count returns the records k.Topic retains.
func (k KafkaDLQ) Count(ctx context.Context) (int64, error) {
	ends, err := k.Admin.ListEndOffsets(ctx, k.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("listing end offsets of %s: %w", k.Topic, err)
	}
	starts, err := k.Admin.ListStartOffsets(ctx, k.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("listing start offsets of %s: %w", k.Topic, err)
	}
	if len(ends[k.Topic]) == 0 {
		return 0, fmt.Errorf("topic %s has no partitions", k.Topic)
	}
	var n int64
	ends.Each(func(end kadm.ListedOffset) {
		if start, ok := starts.Lookup(end.Topic, end.Partition); ok {
			n += max(end.Offset-start.Offset, 0)
		}
	})
	return n, nil
}

// Draw statuses of CampaignDetail.Lottery.
const (
	// DrawUpcoming: joining has not opened yet.
	DrawUpcoming = "upcoming"
	// DrawOpen: users may join.
	DrawOpen = "open"
	// DrawClosed: joining has closed; a draw activity waits for its draw.
	DrawClosed = "closed"
	// DrawDrawn: the draw happened (DrawnAt says when).
	DrawDrawn = "drawn"
)

// Throughput windows: ?window= in seconds.
const (
	DefaultWindow = 300
	MinWindow     = 10
	MaxWindow     = 3600
	// maxBuckets bounds the buckets of a window: its bucket is the
	// window divided by this, in whole seconds, at least one.
	maxBuckets = 300
)

// Campaign is a coupon batch or a lottery activity as defined on its admin
// topic.
type Campaign struct {
	ID string `json:"id"`
	// Kind is sinks.CampaignCouponBatch or sinks.CampaignLottery.
	Kind string `json:"kind"`
	// Type is a lottery's kind: draw, instant_win or gift_exchange.
	Type     string `json:"type,omitempty"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	Revision int64  `json:"revision"`
	// From and Until bound when claims (a batch's validity) or entries (an
	// activity's joining window) are taken.
	From         time.Time  `json:"from"`
	Until        time.Time  `json:"until"`
	DrawAt       *time.Time `json:"draw_at,omitempty"`
	PerUserLimit int64      `json:"per_user_limit"`
	// TotalStock is a batch's stock.
	TotalStock int64 `json:"total_stock,omitempty"`
}

// CampaignList answers GET /v1/campaigns: coupon batches, then lottery
// activities, each sorted by id.
type CampaignList struct {
	Campaigns []Campaign `json:"campaigns"`
	// Unavailable says which kind of campaign could not be listed, and
	// why.
	Unavailable map[string]string `json:"unavailable,omitempty"`
}

// CampaignDetail answers GET /v1/campaigns/{id}.
type CampaignDetail struct {
	Campaign Campaign `json:"campaign"`
	// AsOf is when the figures were read.
	AsOf    time.Time       `json:"as_of"`
	Coupon  *CouponFigures  `json:"coupon,omitempty"`
	Lottery *LotteryFigures `json:"lottery,omitempty"`
	// DLQ counts every record on the dead-letter topic, whatever campaign
	// it was meant for.
	DLQ        *DLQFigures        `json:"dlq,omitempty"`
	Throughput *ThroughputFigures `json:"throughput,omitempty"`
	// Unavailable names the parts left out ("stock", "dlq",
	// "throughput") and why.
	Unavailable map[string]string `json:"unavailable,omitempty"`
}

// CouponFigures are a coupon batch's figures. The counts come from the
// system of record, the stock from the coupon processor's Redis counter,
// which runs ahead of the system of record by the MySQL sink's lag.
type CouponFigures struct {
	Claims      int64            `json:"claims"`
	Grants      int64            `json:"grants"`
	Rejections  int64            `json:"rejections"`
	RejectedBy  map[string]int64 `json:"rejected_by"`
	Redemptions int64            `json:"redemptions"`
	TotalStock  int64            `json:"total_stock"`
	// StockTaken and RemainingStock are absent when Redis is.
	StockTaken     *int64 `json:"stock_taken,omitempty"`
	RemainingStock *int64 `json:"remaining_stock,omitempty"`
}

// LotteryFigures are a lottery activity's figures, from the system of
// record.
type LotteryFigures struct {
	// Participants counts the distinct users with an accepted entry.
	Participants int64            `json:"participants"`
	Entries      int64            `json:"entries"`
	Accepted     int64            `json:"accepted"`
	Rejected     int64            `json:"rejected"`
	RejectedBy   map[string]int64 `json:"rejected_by"`
	// DrawStatus is DrawUpcoming, DrawOpen, DrawClosed or DrawDrawn.
	DrawStatus  string     `json:"draw_status"`
	DrawAt      *time.Time `json:"draw_at,omitempty"`
	DrawnAt     *time.Time `json:"drawn_at,omitempty"`
	DrawTrigger string     `json:"draw_trigger,omitempty"`
	// Winners counts the prizes awarded (draw and instant wins), Tiers per
	// tier.
	Winners int64         `json:"winners"`
	Tiers   []TierFigures `json:"tiers"`
}

// TierFigures are one prize tier's stock and winners.
type TierFigures struct {
	TierID  string `json:"tier_id"`
	Name    string `json:"name,omitempty"`
	Stock   int64  `json:"stock"`
	Winners int64  `json:"winners"`
}

// DLQFigures count the dead-letter topic's records.
type DLQFigures struct {
	Records int64 `json:"records"`
}

// ThroughputFigures are a campaign's decisions per bucket over the window
// ending now, every bucket present (zeros included), oldest first.
type ThroughputFigures struct {
	Source        string                   `json:"source"`
	WindowSeconds int64                    `json:"window_seconds"`
	BucketSeconds int64                    `json:"bucket_seconds"`
	From          time.Time                `json:"from"`
	To            time.Time                `json:"to"`
	Accepted      int64                    `json:"accepted"`
	Rejected      int64                    `json:"rejected"`
	Buckets       []sinks.ThroughputBucket `json:"buckets"`
}

// campaigns serves the campaign routes.
type campaigns struct {
	cfg   *Config
	src   CampaignSources
	cache *figureCache
}

// campaignRoutes registers the campaign page and its API on s.
func (s *Server) campaignRoutes() {
	src := s.cfg.Campaigns
	if src.CacheTTL == 0 {
		src.CacheTTL = time.Second
	}
	if src.Timeout <= 0 {
		src.Timeout = 3 * time.Second
	}
	c := &campaigns{cfg: &s.cfg, src: src, cache: &figureCache{ttl: src.CacheTTL, m: map[string]*figureEntry{}}}
	s.mux.HandleFunc("GET /v1/campaigns", c.list)
	s.mux.HandleFunc("GET /v1/campaigns/{id}", c.detail)
	static, err := fs.Sub(pageFiles, "page")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/campaigns", http.StatusFound)
	})
	s.mux.HandleFunc("GET /campaigns", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		http.ServeFileFS(w, r, static, "index.html")
	})
	files := http.StripPrefix("/campaigns/static/", http.FileServerFS(static))
	s.mux.HandleFunc("GET /campaigns/static/", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		files.ServeHTTP(w, r)
	})
}

//go:embed page
var pageFiles embed.FS

// pageHeaders keeps the page to its own files: no inline script, nothing
// from elsewhere, no framing.
func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
}

func batchCampaign(def *schemas.BatchDefined) Campaign {
	return Campaign{ID: def.BatchID, Kind: sinks.CampaignCouponBatch, Name: def.Name, Status: def.Status, Revision: def.Revision,
		From: def.ValidFrom.UTC(), Until: def.ValidUntil.UTC(), PerUserLimit: def.PerUserLimit, TotalStock: def.TotalStock}
}

func activityCampaign(def *schemas.ActivityDefined) Campaign {
	c := Campaign{ID: def.ActivityID, Kind: sinks.CampaignLottery, Type: def.Kind, Name: def.Name, Status: def.Status,
		Revision: def.Revision, From: def.JoinFrom.UTC(), Until: def.JoinUntil.UTC(), PerUserLimit: def.PerUserLimit}
	if def.DrawAt != nil {
		at := def.DrawAt.UTC()
		c.DrawAt = &at
	}
	return c
}

func (c *campaigns) list(w http.ResponseWriter, _ *http.Request) {
	resp := CampaignList{Campaigns: []Campaign{}}
	for _, def := range c.cfg.Batches.All() {
		resp.Campaigns = append(resp.Campaigns, batchCampaign(def))
	}
	if c.src.Activities == nil {
		resp.Unavailable = map[string]string{sinks.CampaignLottery: "this server does not follow lottery.admin"}
	} else {
		for _, def := range c.src.Activities.All() {
			resp.Campaigns = append(resp.Campaigns, activityCampaign(def))
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// httpError is an answer other than 200, with its message.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func (c *campaigns) detail(w http.ResponseWriter, r *http.Request) {
	id, kind := r.PathValue("id"), r.URL.Query().Get("kind")
	window := int64(DefaultWindow)
	if v := r.URL.Query().Get("window"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < MinWindow || n > MaxWindow {
			badRequest(w, "window must be a number of seconds from %d to %d", MinWindow, MaxWindow)
			return
		}
		window = n
	}
	if kind != "" && kind != sinks.CampaignCouponBatch && kind != sinks.CampaignLottery {
		badRequest(w, "kind must be %s or %s", sinks.CampaignCouponBatch, sinks.CampaignLottery)
		return
	}
	var batch *schemas.BatchDefined
	var activity *schemas.ActivityDefined
	if kind != sinks.CampaignLottery {
		batch = c.cfg.Batches.Get(id)
	}
	if kind != sinks.CampaignCouponBatch && c.src.Activities != nil {
		activity = c.src.Activities.Get(id)
	}
	switch {
	case batch == nil && activity == nil:
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no campaign %.80q", id)})
		return
	case batch != nil && activity != nil:
		writeJSON(w, http.StatusConflict, apiError{Error: fmt.Sprintf(
			"%.80q is both a coupon batch and a lottery activity: add ?kind=%s or ?kind=%s", id, sinks.CampaignCouponBatch, sinks.CampaignLottery)})
		return
	}
	if c.src.Records == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "campaign figures need the system of record (MySQL), and this server has no connection to it"})
		return
	}
	key := fmt.Sprintf("%t\x00%s\x00%d", batch != nil, id, window)
	d, err := c.cache.get(key, c.cfg.Now(), func() (*CampaignDetail, error) {
		if batch != nil {
			return c.batchDetail(r.Context(), batch, window)
		}
		return c.activityDetail(r.Context(), activity, window)
	})
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			writeJSON(w, he.code, apiError{Error: he.msg})
			return
		}
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "reading the campaign failed"})
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// recordsFailed logs a failed read of the system of record and returns the
// 503 it answers.
func (c *campaigns) recordsFailed(id string, err error) error {
	c.cfg.Logger.Error("reading campaign figures", "campaign", id, "err", err)
	return &httpError{code: http.StatusServiceUnavailable, msg: "the system of record (MySQL) is unavailable: the campaign's figures cannot be read"}
}

// parts reads the optional parts of a detail (stock aside) concurrently with
// records, each within the timeout, and fills d.
func (c *campaigns) parts(ctx context.Context, d *CampaignDetail, kind, id string, window int64, records func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.src.Timeout)
	defer cancel()
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		recordsErr error
	)
	unavailable := func(part, why string) {
		mu.Lock()
		defer mu.Unlock()
		if d.Unavailable == nil {
			d.Unavailable = map[string]string{}
		}
		d.Unavailable[part] = why
	}
	wg.Go(func() { recordsErr = records(ctx) })
	if c.src.DLQ == nil {
		unavailable("dlq", "this server has no Kafka admin connection")
	} else {
		wg.Go(func() {
			n, err := c.src.DLQ.Count(ctx)
			if err != nil {
				c.cfg.Logger.Warn("counting dead letters", "err", err)
				unavailable("dlq", "Kafka did not answer: "+err.Error())
				return
			}
			d.DLQ = &DLQFigures{Records: n}
		})
	}
	if c.src.Throughput == nil {
		unavailable("throughput", "this server has no connection to the reporting store (ClickHouse)")
	} else {
		wg.Go(func() {
			t, err := c.throughput(ctx, kind, id, window)
			if err != nil {
				c.cfg.Logger.Warn("reading throughput", "campaign", id, "err", err)
				unavailable("throughput", "the reporting store (ClickHouse) did not answer")
				return
			}
			d.Throughput = t
		})
	}
	wg.Wait()
	return recordsErr
}

func (c *campaigns) batchDetail(ctx context.Context, def *schemas.BatchDefined, window int64) (*CampaignDetail, error) {
	d := &CampaignDetail{Campaign: batchCampaign(def), AsOf: c.cfg.Now().UTC()}
	f := &CouponFigures{TotalStock: def.TotalStock}
	var stockErr error
	err := c.parts(ctx, d, sinks.CampaignCouponBatch, def.BatchID, window, func(ctx context.Context) error {
		var wg sync.WaitGroup
		if c.src.Stock != nil {
			wg.Go(func() {
				taken, err := c.src.Stock.Granted(ctx, def.BatchID)
				if err != nil {
					stockErr = err
					return
				}
				remaining := max(def.TotalStock-taken, 0)
				f.StockTaken, f.RemainingStock = &taken, &remaining
			})
		}
		n, err := c.src.Records.BatchCounts(ctx, def.BatchID)
		wg.Wait()
		if err != nil {
			return err
		}
		f.Claims, f.Grants, f.Rejections, f.RejectedBy, f.Redemptions = n.Claims, n.Grants, n.Rejected, n.RejectedBy, n.Redemptions
		return nil
	})
	if err != nil {
		return nil, c.recordsFailed(def.BatchID, err)
	}
	switch {
	case c.src.Stock == nil:
		d.unavailable("stock", "this server has no connection to the coupon processor's Redis")
	case stockErr != nil:
		c.cfg.Logger.Warn("reading stock", "batch", def.BatchID, "err", stockErr)
		d.unavailable("stock", "Redis did not answer")
	}
	if f.RejectedBy == nil {
		f.RejectedBy = map[string]int64{}
	}
	d.Coupon = f
	return d, nil
}

func (d *CampaignDetail) unavailable(part, why string) {
	if d.Unavailable == nil {
		d.Unavailable = map[string]string{}
	}
	d.Unavailable[part] = why
}

func (c *campaigns) activityDetail(ctx context.Context, def *schemas.ActivityDefined, window int64) (*CampaignDetail, error) {
	now := c.cfg.Now()
	d := &CampaignDetail{Campaign: activityCampaign(def), AsOf: now.UTC()}
	f := &LotteryFigures{DrawAt: d.Campaign.DrawAt, Tiers: []TierFigures{}}
	err := c.parts(ctx, d, sinks.CampaignLottery, def.ActivityID, window, func(ctx context.Context) error {
		var (
			wg                sync.WaitGroup
			counts            sinks.EntryCounts
			awards            map[string]int64
			draw              *schemas.DrawCompleted
			cErr, aErr, drErr error
		)
		wg.Go(func() { counts, cErr = c.src.Records.EntryCounts(ctx, def.ActivityID) })
		wg.Go(func() { awards, aErr = c.src.Records.AwardCounts(ctx, def.ActivityID) })
		if def.Kind == schemas.KindDraw {
			wg.Go(func() {
				draw, drErr = c.src.Records.Draw(ctx, def.ActivityID)
				if errors.Is(drErr, sinks.ErrNotFound) {
					draw, drErr = nil, nil
				}
			})
		}
		wg.Wait()
		if err := errors.Join(cErr, aErr, drErr); err != nil {
			return err
		}
		f.Participants, f.Accepted, f.Rejected = counts.Participants, counts.Accepted, counts.Rejected
		f.Entries, f.RejectedBy = counts.Accepted+counts.Rejected, counts.RejectedBy
		f.DrawStatus = DrawStatus(def, draw, now)
		if draw != nil {
			at := draw.DrawnAt.UTC()
			f.DrawnAt, f.DrawTrigger = &at, draw.Trigger
		}
		for _, t := range def.Prizes {
			f.Tiers = append(f.Tiers, TierFigures{TierID: t.TierID, Name: t.Name, Stock: t.Stock, Winners: awards[t.TierID]})
		}
		for _, n := range awards {
			f.Winners += n
		}
		return nil
	})
	if err != nil {
		return nil, c.recordsFailed(def.ActivityID, err)
	}
	if f.RejectedBy == nil {
		f.RejectedBy = map[string]int64{}
	}
	d.Lottery = f
	return d, nil
}

// DrawStatus is where an activity stands at now: drawn once the system of
// record holds its draw (draw non-nil), otherwise upcoming, open or
// closed by its joining window.
func DrawStatus(def *schemas.ActivityDefined, draw *schemas.DrawCompleted, now time.Time) string {
	switch {
	case draw != nil:
		return DrawDrawn
	case now.Before(def.JoinFrom):
		return DrawUpcoming
	case now.Before(def.JoinUntil):
		return DrawOpen
	}
	return DrawClosed
}

// WindowBuckets returns the buckets of a throughput window of the given
// seconds ending at now: [from, to) cut in bucket-wide steps aligned on the
// Unix epoch, the last one holding now.
func WindowBuckets(now time.Time, window int64) (from, to time.Time, bucket time.Duration) {
	bucket = time.Duration(max(window/maxBuckets, 1)) * time.Second
	to = sinks.BucketStart(now, bucket).Add(bucket)
	from = to.Add(-time.Duration(window) * time.Second)
	return from, to, bucket
}

func (c *campaigns) throughput(ctx context.Context, kind, id string, window int64) (*ThroughputFigures, error) {
	from, to, bucket := WindowBuckets(c.cfg.Now(), window)
	got, err := c.src.Throughput.Throughput(ctx, sinks.ThroughputQuery{Kind: kind, ID: id, From: from, To: to, Bucket: bucket})
	if err != nil {
		return nil, err
	}
	t := &ThroughputFigures{Source: "clickhouse", WindowSeconds: window, BucketSeconds: int64(bucket / time.Second), From: from, To: to}
	byStart := make(map[time.Time]sinks.ThroughputBucket, len(got))
	for _, b := range got {
		byStart[b.Start.UTC()] = b
	}
	for at := from; at.Before(to); at = at.Add(bucket) {
		b, ok := byStart[at]
		if !ok {
			b = sinks.ThroughputBucket{Start: at}
		}
		t.Accepted += b.Accepted
		t.Rejected += b.Rejected
		t.Buckets = append(t.Buckets, b)
	}
	return t, nil
}

// figureCache keeps each campaign's figures for a short time, so that many
// pages polling every second cost one read of the stores per campaign and
// second; a request for figures being read waits for that read.
type figureCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]*figureEntry
}

type figureEntry struct {
	done   chan struct{}
	at     time.Time
	detail *CampaignDetail
	err    error
}

// maxCached bounds the entries kept; past it, expired ones are dropped.
const maxCached = 10_000

func (c *figureCache) get(key string, now time.Time, read func() (*CampaignDetail, error)) (*CampaignDetail, error) {
	c.mu.Lock()
	e := c.m[key]
	if e != nil {
		select {
		case <-e.done:
			if c.ttl < 0 || now.Sub(e.at) >= c.ttl {
				e = nil
			}
		default: // being read
		}
	}
	if e == nil {
		if len(c.m) >= maxCached {
			for k, old := range c.m {
				select {
				case <-old.done:
					if now.Sub(old.at) >= c.ttl {
						delete(c.m, k)
					}
				default:
				}
			}
		}
		e = &figureEntry{done: make(chan struct{}), at: now}
		c.m[key] = e
		c.mu.Unlock()
		e.detail, e.err = read()
		close(e.done)
		return e.detail, e.err
	}
	c.mu.Unlock()
	<-e.done
	return e.detail, e.err
}
