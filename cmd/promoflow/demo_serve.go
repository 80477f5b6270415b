package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/sinks"
)

// demoOptions change how runScenario runs beyond the scenario itself.
type demoOptions struct {
	// database names the real servers' databases ("" is promoflow_demo).
	database string
	// serve, when set, serves the campaign page during the run.
	serve *demoServe
}

// demoServe serves the campaign page and its API from the demo's own
// stores, as `promoflow serve` does from a deployment's.
type demoServe struct {
	// addr is the listen address (port 0 picks one).
	addr string
	// served, when set, is called with the page's URL once it listens,
	// before any claim is published.
	served func(url string)
	// after, when set, is called once the run has finished and been
	// checked, with the pipeline and the page still up; the run ends when
	// it returns.
	after func(ctx context.Context, run demoRun) error
}

// demoRun is a finished run whose page is still served.
type demoRun struct {
	rep *report
	// url is the campaign page's.
	url string
	// brokers are the embedded Kafka's.
	brokers []string
}

// start serves the page on the embedded environment's stores and the
// pipeline's caches, prints its URL to out and returns a function that
// stops it.
func (d *demoServe) start(ctx context.Context, cfg *Config, env *embedded, p *pipeline, out io.Writer) (func(), string, error) {
	records, ok := env.parts.mysql.(api.CampaignRecords)
	if !ok {
		return nil, "", errors.New("the demo's system of record cannot read campaign figures")
	}
	users, ok := env.parts.mysql.(sinks.CouponReader)
	if !ok {
		return nil, "", errors.New("the demo's system of record cannot read coupons")
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(env.brokers...))
	if err != nil {
		return nil, "", err
	}
	src := api.CampaignSources{
		Activities: p.acts,
		Records:    records,
		Stock:      coupon.NewStore(env.parts.rdb, coupon.WithKeyPrefix(cfg.Redis.KeyPrefix)),
		DLQ:        api.KafkaDLQ{Admin: kadm.NewClient(kcl), Topic: cfg.Runtime.DLQTopic},
	}
	if tr, ok := env.parts.clickhouse.(sinks.ThroughputReader); ok {
		src.Throughput = tr
	}
	srv, err := api.New(api.Config{Coupons: users, Batches: p.batches, Logger: p.log, Campaigns: src})
	if err != nil {
		kcl.Close()
		return nil, "", err
	}
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		kcl.Close()
		return nil, "", fmt.Errorf("serving the campaign page: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	go func() { _ = hs.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/campaigns"
	fmt.Fprintf(out, "\nCampaign page: %s  (live during and after the demo)\n", url)
	if d.served != nil {
		d.served(url)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		kcl.Close()
	}, url, nil
}
