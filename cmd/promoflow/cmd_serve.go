package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/sinks/mysql"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "serve the HTTP API: order-time coupon validation, a user's coupons, health",
		usage:   "[--addr HOST:PORT] [--config FILE]",
		help: `Serves the HTTP API other services call (docs/coupons.md):

  POST /v1/users/{user}/coupons/usable   body {"items":[{"sku","category","brand","model","amount"}]}
        the user's usable coupons for the cart, best first, each with the discount
        (or bonus) it gives, and the others with the reason they do not apply:
        expired, not_yet_valid, out_of_scope, below_threshold, excluded (by another
        coupon of its exclusion group), locked, used, batch_disabled, unknown_batch
  GET  /v1/users/{user}/coupons[?state=available|locked|used|expired]
  GET  /healthz   the process is up
  GET  /readyz    the batch cache has caught up with coupon.admin and MySQL answers

It reads the user's shard of the MySQL system of record (never every shard),
keeps a user's coupons in memory for --cache-ttl, and follows batch
definitions from coupon.admin. Stops cleanly on SIGINT/SIGTERM.

Example:
  promoflow serve --config promoflow.yaml --addr 127.0.0.1:8080
  curl -s -XPOST localhost:8080/v1/users/u1/coupons/usable -d '{"items":[{"category":"phone","brand":"acme","amount":129900}]}'`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			addr := fs.String("addr", "127.0.0.1:8080", "listen address")
			cacheTTL := fs.Duration("cache-ttl", time.Second, "how long a user's coupons are served from memory (negative: no cache)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cfg, err := loadConfig(*cfgPath)
				if err != nil {
					return err
				}
				log := cfg.logger()
				store, err := mysql.New(ctx, cfg.MySQL)
				if err != nil {
					return fmt.Errorf("opening the system of record: %w", err)
				}
				defer store.Close()
				batches := coupon.NewBatches()
				view, err := stream.NewView(cfg.streamConfig(log), coupon.TopicAdmin, batches.Apply)
				if err != nil {
					return err
				}
				vctx, stopView := context.WithCancel(context.WithoutCancel(ctx))
				defer stopView()
				go func() { _ = view.Run(vctx) }()
				caught := make(chan struct{})
				go func() {
					if view.WaitCaughtUp(vctx) == nil {
						close(caught)
					}
				}()
				srv, err := api.New(api.Config{
					Coupons: store, Batches: batches, CacheTTL: *cacheTTL, Logger: log,
					Ready: func(ctx context.Context) error {
						select {
						case <-caught:
						default:
							return errors.New("the batch cache is still loading coupon.admin")
						}
						_, err := store.UserCoupons(ctx, "readiness-probe")
						return err
					},
				})
				if err != nil {
					return err
				}
				ln, err := net.Listen("tcp", *addr)
				if err != nil {
					return err
				}
				hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
					WriteTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
				log.Info("serving", "addr", ln.Addr().String())
				fmt.Fprintf(cmdStdout, "serving on http://%s\n", ln.Addr())
				errc := make(chan error, 1)
				go func() { errc <- hs.Serve(ln) }()
				select {
				case err := <-errc:
					return err
				case <-ctx.Done():
				}
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return hs.Shutdown(sctx)
			}
		},
	})
}
