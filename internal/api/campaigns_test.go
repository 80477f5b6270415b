package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/mysql"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

func integration(t *testing.T) {
	t.Helper()
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
}

// proxy forwards TCP connections to target until Close, which cuts every
// connection: a store that goes away under the server.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(p.Close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// campaignEnv is a server over the real MariaDB, ClickHouse and Redis and
// a kfake cluster, holding one coupon batch and one draw whose figures the
// test knows because it wrote them.
type campaignEnv struct {
	srv      *Server
	cfg      Config
	now      time.Time
	batch    *schemas.BatchDefined
	draw     *schemas.ActivityDefined
	mysqlFwd *proxy
	redisFwd *proxy
	// What was written.
	grants, rejects, used, taken int64
	rejectedBy                   map[string]int64
	entries, accepted            int64
	entryRejects                 map[string]int64
	awards                       map[string]int64
	dlq                          int64
}

func newCampaignEnv(t *testing.T) *campaignEnv {
	t.Helper()
	integration(t)
	ctx := testenv.Context(t, 60*time.Second)
	name := testenv.Name("pfcamp")
	e := &campaignEnv{now: time.Now().UTC(), rejectedBy: map[string]int64{}, entryRejects: map[string]int64{}, awards: map[string]int64{}}

	// MySQL through a proxy the outage test cuts.
	e.mysqlFwd = newProxy(t, strings.TrimSuffix(strings.TrimPrefix(testenv.MySQLDSN(), "root@tcp("), ")/"))
	mcfg := mysql.Config{DSN: "root@tcp(" + e.mysqlFwd.Addr() + ")/", DatabasePrefix: name, Databases: 2, TablesPerDatabase: 2}
	t.Cleanup(func() { dropMySQL(name) })
	my, err := mysql.New(ctx, mcfg)
	if err != nil {
		t.Fatalf("starting mysql sink: %v", err)
	}
	t.Cleanup(func() { my.Close() })
	t.Cleanup(func() {
		if conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}}); err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
			conn.Close()
		}
	})
	ch, err := clickhouse.New(ctx, clickhouse.Config{Addr: testenv.ClickHouseAddr(), Database: name})
	if err != nil {
		t.Fatalf("starting clickhouse sink: %v", err)
	}
	t.Cleanup(func() { ch.Close() })

	e.redisFwd = newProxy(t, testenv.RedisAddr())
	rdb := redis.NewClient(&redis.Options{Addr: e.redisFwd.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() {
		direct := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
		keys, _ := direct.Keys(context.Background(), name+":*").Result()
		if len(keys) > 0 {
			direct.Del(context.Background(), keys...)
		}
		direct.Close()
		rdb.Close()
	})
	store := coupon.NewStore(rdb, coupon.WithKeyPrefix(name))
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}

	brokers, adm := testenv.KafkaWithTopics(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "promoflow.dlq", Key: []byte(fmt.Sprint(i)), Value: []byte("bad")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		e.dlq++
	}

	now := e.now
	e.batch = &schemas.BatchDefined{BatchID: "HOT-" + name, Name: "Hot coupon", Revision: 1, TotalStock: 10, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Status: schemas.BatchActive}
	drawAt := now.Add(-time.Minute)
	e.draw = &schemas.ActivityDefined{ActivityID: "DRAW-" + name, Name: "Live draw", Revision: 1, Kind: schemas.KindDraw,
		JoinFrom: now.Add(-time.Hour), JoinUntil: drawAt, DrawAt: &drawAt, PerUserLimit: 1, Status: schemas.BatchActive,
		Prizes: []schemas.PrizeTier{{TierID: "gold", Name: "Phone", Kind: schemas.PrizeGoods, Stock: 1},
			{TierID: "silver", Kind: schemas.PrizePoints, Points: 5, Stock: 5}, {TierID: "bronze", Kind: schemas.PrizePoints, Points: 1, Stock: 10}}}
	batches, acts := coupon.NewBatches(), lottery.NewActivities()
	batches.Put(e.batch)
	acts.Put(e.draw)
	// A batch that is also an activity's id.
	batches.Put(&schemas.BatchDefined{BatchID: e.draw.ActivityID, Revision: 1, TotalStock: 1, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Status: schemas.BatchActive})

	// The stock taken in Redis by the processor's own step: 7 claims.
	var in []coupon.ClaimInput
	for i := range 7 {
		in = append(in, coupon.ClaimInput{AppID: "app", EventID: fmt.Sprintf("c%d", i), BatchID: e.batch.BatchID, UserID: fmt.Sprintf("u%d", i), Def: e.batch})
	}
	if _, err := store.Claim(ctx, "", 0, now, in); err != nil {
		t.Fatal(err)
	}
	e.taken = 7

	// Results, the same to both stores: 20 decisions over the last 20s.
	var events []*schemas.Envelope
	reasons := []string{schemas.RejectOutOfStock, schemas.RejectUserLimit}
	for i := range 20 {
		at := now.Add(-time.Duration(20-i) * time.Second).Truncate(time.Millisecond)
		g := schemas.GrantDecided{ClaimEventID: fmt.Sprintf("claim-%d", i), BatchID: e.batch.BatchID, UserID: fmt.Sprintf("user-%d", i),
			ClaimedAt: at.Add(-time.Millisecond), DecidedAt: at}
		g.ResultID = schemas.ResultID(sinktest.ResultKind, "app", g.ClaimEventID)
		if i%5 < 3 {
			g.Status, g.CouponID, g.GrantSeq = schemas.StatusGranted, g.ResultID, int64(i+1)
			e.grants++
		} else {
			g.Status, g.Reason = schemas.StatusRejected, reasons[i%2]
			e.rejects++
			e.rejectedBy[g.Reason]++
		}
		events = append(events, sinktest.Grant(t, "app", g))
		if g.Status == schemas.StatusGranted && i < 8 {
			c := schemas.StateChanged{ResultID: schemas.ResultID("op", "app", g.ResultID), CouponID: g.ResultID, UserID: g.UserID,
				BatchID: g.BatchID, Op: schemas.OpConfirm, Status: schemas.OpApplied, State: schemas.CouponUsed, Seq: 3,
				OrderID: "o-" + g.UserID, OrderAmount: 100, ValidFrom: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour), ChangedAt: at}
			events = append(events, sinktest.Result(t, "app", at, c))
			e.used++
		}
	}
	for i := range 36 {
		at := now.Add(-time.Duration(40-i) * time.Second).Truncate(time.Millisecond)
		en := schemas.EntryRecorded{EntryEventID: fmt.Sprintf("join-%d", i), ActivityID: e.draw.ActivityID, UserID: fmt.Sprintf("viewer-%d", i%30),
			Status: schemas.EntryAccepted, Roll: -1, OccurredAt: at, RecordedAt: at}
		en.ResultID = schemas.ResultID(schemas.TypeLotteryEntryRecorded, "app", en.EntryEventID)
		if i >= 30 {
			en.Status, en.Reason = schemas.EntryRejected, []string{schemas.RejectLimitReached, schemas.RejectDrawClosed}[i%2]
			e.entryRejects[en.Reason]++
		} else {
			e.accepted++
		}
		e.entries++
		events = append(events, sinktest.Result(t, "app", at, en))
	}
	drawn := drawAt.Add(time.Second).Truncate(time.Millisecond)
	hex := strings.Repeat("ab", 32)
	events = append(events, sinktest.Result(t, "app", drawn, schemas.DrawCompleted{
		ResultID: schemas.ResultID("draw", "app", e.draw.ActivityID), ActivityID: e.draw.ActivityID, Trigger: schemas.TriggerScheduled,
		Seed: hex, SeedHash: hex, Participants: 30, ParticipantsDigest: hex, Winners: 4, Prizes: "gold:1,silver:5,bronze:10", DrawnAt: drawn}))
	for i, tier := range []string{"gold", "silver", "silver", "silver"} {
		key := fmt.Sprintf("%s/viewer-%d", e.draw.ActivityID, i)
		events = append(events, sinktest.Result(t, "app", drawn, schemas.PrizeAwarded{
			ResultID: schemas.ResultID(schemas.TypeLotteryPrizeAwarded, "app", key), ActivityID: e.draw.ActivityID,
			UserID: fmt.Sprintf("viewer-%d", i), TierID: tier, PrizeKind: schemas.PrizePoints, Points: 5, Source: "draw",
			SourceID: schemas.ResultID("src", "app", key), Rank: int64(i + 1), AwardedAt: drawn}))
		e.awards[tier]++
	}
	if err := my.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := ch.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}

	e.cfg = Config{Coupons: my, Batches: batches, Logger: quietLog(), Campaigns: CampaignSources{
		Activities: acts, Records: my, Stock: store, DLQ: KafkaDLQ{Admin: adm, Topic: "promoflow.dlq"}, Throughput: ch,
		CacheTTL: -1, Timeout: 2 * time.Second,
	}}
	e.srv = e.server(t, e.cfg)
	return e
}

func (e *campaignEnv) server(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dropMySQL(prefix string) {
	db, err := sql.Open("mysql", testenv.MySQLDSN())
	if err != nil {
		return
	}
	defer db.Close()
	for i := range 2 {
		db.Exec("DROP DATABASE IF EXISTS `" + fmt.Sprintf("%s_%d", prefix, i) + "`")
	}
}

func get[T any](t *testing.T, s *Server, path string, wantCode int) T {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	if w.Code != wantCode {
		t.Fatalf("GET %s: %d %s, want %d", path, w.Code, w.Body.String(), wantCode)
	}
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("GET %s: decoding %s: %v", path, w.Body.String(), err)
	}
	return v
}

func TestIntegrationCampaignsAPI(t *testing.T) {
	e := newCampaignEnv(t)

	list := get[CampaignList](t, e.srv, "/v1/campaigns", http.StatusOK)
	var ids []string
	for _, c := range list.Campaigns {
		ids = append(ids, c.Kind+":"+c.ID)
	}
	want := []string{"coupon_batch:" + e.draw.ActivityID, "coupon_batch:" + e.batch.BatchID, "lottery:" + e.draw.ActivityID}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("campaigns %v, want %v", ids, want)
	}

	d := get[CampaignDetail](t, e.srv, "/v1/campaigns/"+e.batch.BatchID, http.StatusOK)
	f := d.Coupon
	if f == nil || d.Lottery != nil {
		t.Fatalf("coupon detail: %+v", d)
	}
	if f.Claims != e.grants+e.rejects || f.Grants != e.grants || f.Rejections != e.rejects || f.Redemptions != e.used || f.TotalStock != 10 {
		t.Errorf("coupon figures %+v, want claims %d grants %d rejections %d redemptions %d", f, e.grants+e.rejects, e.grants, e.rejects, e.used)
	}
	if fmt.Sprint(f.RejectedBy) != fmt.Sprint(e.rejectedBy) {
		t.Errorf("rejected by %v, want %v", f.RejectedBy, e.rejectedBy)
	}
	if f.StockTaken == nil || *f.StockTaken != e.taken || f.RemainingStock == nil || *f.RemainingStock != 10-e.taken {
		t.Errorf("stock taken %v remaining %v, want %d and %d", f.StockTaken, f.RemainingStock, e.taken, 10-e.taken)
	}
	if d.DLQ == nil || d.DLQ.Records != e.dlq {
		t.Errorf("dlq %+v, want %d records", d.DLQ, e.dlq)
	}
	if len(d.Unavailable) > 0 {
		t.Errorf("unavailable: %v", d.Unavailable)
	}
	tp := d.Throughput
	if tp == nil || tp.Accepted != e.grants || tp.Rejected != e.rejects || tp.BucketSeconds != 1 || len(tp.Buckets) != DefaultWindow {
		t.Fatalf("throughput %+v, want %d accepted, %d rejected in %d one-second buckets", tp, e.grants, e.rejects, DefaultWindow)
	}
	for i, b := range tp.Buckets {
		if i > 0 && !b.Start.Equal(tp.Buckets[i-1].Start.Add(time.Second)) {
			t.Fatalf("bucket %d starts at %s after %s", i, b.Start, tp.Buckets[i-1].Start)
		}
	}
	// A longer window has wider buckets and the same totals.
	d = get[CampaignDetail](t, e.srv, "/v1/campaigns/"+e.batch.BatchID+"?window=3600", http.StatusOK)
	if tp := d.Throughput; tp == nil || tp.BucketSeconds != 12 || len(tp.Buckets) != 300 || tp.Accepted != e.grants {
		t.Errorf("1h throughput %+v", tp)
	}

	d = get[CampaignDetail](t, e.srv, "/v1/campaigns/"+e.draw.ActivityID+"?kind=lottery", http.StatusOK)
	l := d.Lottery
	if l == nil || d.Coupon != nil {
		t.Fatalf("lottery detail: %+v", d)
	}
	if l.Participants != 30 || l.Entries != e.entries || l.Accepted != e.accepted || l.Rejected != e.entries-e.accepted ||
		fmt.Sprint(l.RejectedBy) != fmt.Sprint(e.entryRejects) {
		t.Errorf("lottery figures %+v, want 30 participants, %d entries, rejected %v", l, e.entries, e.entryRejects)
	}
	if l.DrawStatus != DrawDrawn || l.DrawnAt == nil || l.DrawTrigger != schemas.TriggerScheduled || l.Winners != 4 {
		t.Errorf("draw %s at %v by %s, %d winners; want drawn, scheduled, 4", l.DrawStatus, l.DrawnAt, l.DrawTrigger, l.Winners)
	}
	var tiers []string
	for _, tf := range l.Tiers {
		tiers = append(tiers, fmt.Sprintf("%s:%d/%d", tf.TierID, tf.Winners, tf.Stock))
	}
	if got := strings.Join(tiers, " "); got != "gold:1/1 silver:3/5 bronze:0/10" {
		t.Errorf("tiers %s", got)
	}
	if tp := d.Throughput; tp == nil || tp.Accepted != e.accepted || tp.Rejected != e.entries-e.accepted {
		t.Errorf("lottery throughput %+v", tp)
	}

	// The id names a batch and an activity: the kind decides.
	get[apiError](t, e.srv, "/v1/campaigns/"+e.draw.ActivityID, http.StatusConflict)
	if d := get[CampaignDetail](t, e.srv, "/v1/campaigns/"+e.draw.ActivityID+"?kind=coupon_batch", http.StatusOK); d.Coupon == nil || d.Coupon.Claims != 0 {
		t.Errorf("the batch named like the draw: %+v", d.Coupon)
	}

	for _, path := range []string{"/v1/campaigns/nope", "/v1/campaigns/" + e.batch.BatchID + "?kind=lottery", "/v1/campaigns/" + strings.Repeat("x", 300)} {
		if r := get[apiError](t, e.srv, path, http.StatusNotFound); !strings.Contains(r.Error, "no campaign") {
			t.Errorf("GET %s: %q", path, r.Error)
		}
	}
	for _, q := range []string{"?window=5", "?window=99999", "?window=x", "?kind=gift"} {
		get[apiError](t, e.srv, "/v1/campaigns/"+e.batch.BatchID+q, http.StatusBadRequest)
	}
}

// TestIntegrationCampaignsStoreOutage cuts each store away under the
// server: MySQL down is a 503 with a clear message; Redis, ClickHouse or
// Kafka missing leaves its part out, named in unavailable.
func TestIntegrationCampaignsStoreOutage(t *testing.T) {
	e := newCampaignEnv(t)
	path := "/v1/campaigns/" + e.batch.BatchID

	// Without Redis, ClickHouse and Kafka configured.
	cfg := e.cfg
	cfg.Campaigns.Stock, cfg.Campaigns.Throughput, cfg.Campaigns.DLQ = nil, nil, nil
	d := get[CampaignDetail](t, e.server(t, cfg), path, http.StatusOK)
	if d.Coupon == nil || d.Coupon.Claims != e.grants+e.rejects || d.Coupon.RemainingStock != nil || d.Throughput != nil || d.DLQ != nil {
		t.Errorf("without the optional stores: %+v", d)
	}
	for _, part := range []string{"stock", "throughput", "dlq"} {
		if d.Unavailable[part] == "" {
			t.Errorf("unavailable lacks %s: %v", part, d.Unavailable)
		}
	}
	// Without MySQL configured.
	cfg = e.cfg
	cfg.Campaigns.Records = nil
	if r := get[apiError](t, e.server(t, cfg), path, http.StatusServiceUnavailable); !strings.Contains(r.Error, "MySQL") {
		t.Errorf("without MySQL: %q", r.Error)
	}
	// Without the lottery view, lotteries are not listed and say why.
	cfg = e.cfg
	cfg.Campaigns.Activities = nil
	if l := get[CampaignList](t, e.server(t, cfg), "/v1/campaigns", http.StatusOK); len(l.Campaigns) != 2 || l.Unavailable[sinks.CampaignLottery] == "" {
		t.Errorf("without lotteries: %+v", l)
	}

	// Redis goes away: the figures stay, the stock is unavailable.
	e.redisFwd.Close()
	d = get[CampaignDetail](t, e.srv, path, http.StatusOK)
	if d.Coupon == nil || d.Coupon.Grants != e.grants || d.Coupon.RemainingStock != nil || !strings.Contains(d.Unavailable["stock"], "Redis") {
		t.Errorf("with Redis down: %+v %v", d.Coupon, d.Unavailable)
	}
	// MySQL goes away: 503, for batches and activities alike.
	e.mysqlFwd.Close()
	for _, p := range []string{path, "/v1/campaigns/" + e.draw.ActivityID + "?kind=lottery"} {
		start := time.Now()
		r := get[apiError](t, e.srv, p, http.StatusServiceUnavailable)
		if !strings.Contains(r.Error, "system of record (MySQL) is unavailable") {
			t.Errorf("GET %s with MySQL down: %q", p, r.Error)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("GET %s with MySQL down took %s", p, el)
		}
	}
	// The list needs no store.
	get[CampaignList](t, e.srv, "/v1/campaigns", http.StatusOK)
}

func TestCampaignPageIsServed(t *testing.T) {
	s, _ := testServer(t, time.Second)
	for path, want := range map[string]string{
		"/campaigns":                 `data-testid="campaign-view"`,
		"/campaigns/static/page.js":  "/v1/campaigns/",
		"/campaigns/static/page.css": ".tiles",
	} {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, w.Code, want)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/campaigns" {
		t.Errorf("GET /: %d to %q", w.Code, w.Header().Get("Location"))
	}
	// Without campaign sources the list still answers, and a campaign's
	// figures say what is missing.
	get[CampaignList](t, s, "/v1/campaigns", http.StatusOK)
}

func TestDrawStatus(t *testing.T) {
	t0 := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	def := &schemas.ActivityDefined{JoinFrom: t0, JoinUntil: t0.Add(time.Hour)}
	draw := &schemas.DrawCompleted{DrawnAt: t0.Add(2 * time.Hour)}
	for _, c := range []struct {
		now  time.Time
		draw *schemas.DrawCompleted
		want string
	}{
		{t0.Add(-time.Millisecond), nil, DrawUpcoming},
		{t0, nil, DrawOpen},
		{t0.Add(time.Hour - time.Millisecond), nil, DrawOpen},
		{t0.Add(time.Hour), nil, DrawClosed},
		{t0.Add(3 * time.Hour), nil, DrawClosed},
		{t0.Add(3 * time.Hour), draw, DrawDrawn},
		{t0.Add(-time.Hour), draw, DrawDrawn}, // the record wins over the clock
	} {
		if got := DrawStatus(def, c.draw, c.now); got != c.want {
			t.Errorf("DrawStatus at %s (drawn %t) = %s, want %s", c.now, c.draw != nil, got, c.want)
		}
	}
}

func TestWindowBuckets(t *testing.T) {
	now := time.Date(2026, 11, 11, 20, 0, 7, 400e6, time.UTC)
	for _, c := range []struct {
		window       int64
		from, to     time.Time
		bucket       time.Duration
		wantBuckets  int
		containsNow  bool
		alignedOnSec bool
	}{
		{300, now.Truncate(time.Second).Add(-299 * time.Second), now.Truncate(time.Second).Add(time.Second), time.Second, 300, true, true},
		{3600, time.Date(2026, 11, 11, 19, 0, 12, 0, time.UTC), time.Date(2026, 11, 11, 20, 0, 12, 0, time.UTC), 12 * time.Second, 300, true, true},
		{10, now.Truncate(time.Second).Add(-9 * time.Second), now.Truncate(time.Second).Add(time.Second), time.Second, 10, true, true},
	} {
		from, to, bucket := WindowBuckets(now, c.window)
		if !from.Equal(c.from) || !to.Equal(c.to) || bucket != c.bucket {
			t.Errorf("WindowBuckets(%d) = %s, %s, %s; want %s, %s, %s", c.window, from, to, bucket, c.from, c.to, c.bucket)
		}
		if n := int(to.Sub(from) / bucket); n != c.wantBuckets || now.Before(from) || !now.Before(to) {
			t.Errorf("WindowBuckets(%d): %d buckets over [%s, %s) for now %s", c.window, n, from, to, now)
		}
	}
}

// TestFigureCacheCollapsesReads checks that concurrent requests for one
// campaign cost one read, that the figures are kept for the TTL, and that
// an error is kept as briefly.
func TestFigureCacheCollapsesReads(t *testing.T) {
	c := &figureCache{ttl: time.Second, m: map[string]*figureEntry{}}
	var reads atomic.Int64
	release := make(chan struct{})
	read := func() (*CampaignDetail, error) {
		reads.Add(1)
		<-release
		return &CampaignDetail{AsOf: time.Unix(reads.Load(), 0)}, nil
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if d, err := c.get("k", t0, read); err != nil || d.AsOf.Unix() != 1 {
				t.Errorf("got %+v, %v", d, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("20 concurrent requests made %d reads", n)
	}
	c.get("k", t0.Add(999*time.Millisecond), read)
	if n := reads.Load(); n != 1 {
		t.Errorf("a request within the TTL read again (%d reads)", n)
	}
	c.get("k", t0.Add(time.Second), read)
	c.get("other", t0, read)
	if n := reads.Load(); n != 3 {
		t.Errorf("%d reads, want 3 (expired, other key)", n)
	}
	boom := errors.New("boom")
	failing := func() (*CampaignDetail, error) { reads.Add(1); return nil, boom }
	if _, err := c.get("bad", t0, failing); !errors.Is(err, boom) {
		t.Errorf("error %v", err)
	}
	if _, err := c.get("bad", t0.Add(10*time.Millisecond), failing); !errors.Is(err, boom) || reads.Load() != 4 {
		t.Errorf("the error was not kept for the TTL: %v, %d reads", err, reads.Load())
	}
}

// quietLog keeps the expected errors of the outage tests out of the output.
func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
