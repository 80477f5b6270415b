package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/referral"
)

// buildReferral adds the referral processor (with its activity view and
// its admin stage) to the pipeline.
func (p *pipeline) buildReferral(ctx context.Context, pt parts, scfg stream.Config) error {
	rc := p.cfg.Referral
	keys, err := rc.keyring(os.Getenv)
	if err != nil {
		return err
	}
	if len(keys.KeyIDs()) == 0 {
		p.log.Warn("referral.link_keys is empty: every share-link token is refused as bad_token (docs/referrals.md)")
	}
	rdb, err := p.redis(ctx, pt)
	if err != nil {
		return err
	}
	store := referral.NewStore(rdb, referral.WithKeyPrefix(p.cfg.Redis.KeyPrefix),
		referral.WithDecisionTTL(rc.DecisionTTL), referral.WithMaxChainDepth(rc.MaxChainDepth))
	if err := store.Load(ctx); err != nil {
		return err
	}
	p.refActs = referral.NewActivities()
	view, err := stream.NewView(scfg, referral.TopicAdmin, p.refActs.Apply)
	if err != nil {
		return err
	}
	p.views = append(p.views, view)
	sc := scfg
	sc.Fencer = &stream.RedisFencer{Client: rdb, Prefix: p.cfg.Redis.KeyPrefix}
	r, err := stream.New(sc, referral.New(store, p.refActs, keys).Stage())
	if err != nil {
		return err
	}
	p.runners = append(p.runners, r)
	// The admin check runs with the processor, in a group of its own.
	ar, err := stream.New(scfg, referral.AdminStage())
	if err != nil {
		return err
	}
	p.runners = append(p.runners, ar)
	return nil
}

// serveShareLinks builds the share-link routes of `promoflow serve`: the
// keyring, and a cache of referral activities following referral.admin
// until ctx ends. caught is closed once the cache has caught up.
func serveShareLinks(ctx context.Context, cfg *Config, log *slog.Logger) (_ *api.ShareLinks, caught <-chan struct{}, err error) {
	keys, err := cfg.Referral.keyring(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if len(keys.KeyIDs()) == 0 {
		log.Warn("referral.link_keys is empty: POST /v1/share-links answers 503 and every token is refused (docs/referrals.md)")
	}
	acts := referral.NewActivities()
	view, err := stream.NewView(cfg.streamConfig(log), referral.TopicAdmin, acts.Apply)
	if err != nil {
		return nil, nil, err
	}
	go func() { _ = view.Run(ctx) }()
	done := make(chan struct{})
	go func() {
		if view.WaitCaughtUp(ctx) == nil {
			close(done)
		}
	}()
	return &api.ShareLinks{Keys: keys, Activities: acts, URL: cfg.Referral.linkURL}, done, nil
}
