package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/promoflow/promoflow/processors/recommend"
)

func init() {
	register(&command{
		name:    "recommend",
		summary: "check a recommendation rules file; show a user's profile and recommendations",
		usage:   "rules FILE | rules --default | show USER [--config FILE]",
		help: `  rules FILE      parses and validates a rules file as the recommend stage will,
                  printing every problem with its line and field (exit 1), or
                  what the rules say and their revision (docs/recommendations.md).
  rules --default prints the built-in rules, a starting point for your own.
  show USER       prints the user's profile (each affinity decayed to now under
                  the configured rules) and the top N kept for lookups, from Redis.

A running recommend stage reloads its rules file (recommend.rules_file) when
it changes, or at once on SIGHUP; a file that does not validate is refused
and the rules in force stay.

Examples:
  promoflow recommend rules rules.yaml
  promoflow recommend rules --default > rules.yaml
  promoflow recommend show u42 --config promoflow.yaml`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file (show)")
			def := fs.Bool("default", false, "rules: print the built-in rules file")
			return func(ctx context.Context, args []string) error {
				switch {
				case len(args) == 1 && args[0] == "rules" && *def:
					_, err := cmdStdout.Write(recommend.DefaultRulesYAML)
					return err
				case len(args) == 2 && args[0] == "rules":
					r, err := recommend.LoadRules(args[1])
					if err != nil {
						return err
					}
					describeRules(cmdStdout, args[1], r)
					return nil
				case len(args) == 2 && args[0] == "show":
					return showUser(ctx, *cfgPath, args[1])
				}
				return usagef("want rules FILE, rules --default or show USER")
			}
		},
	})
}

// describeRules prints what valid rules say.
func describeRules(w io.Writer, name string, r *recommend.Rules) {
	fmt.Fprintf(w, "%s: valid, revision %s\n", name, r.Revision)
	fmt.Fprintf(w, "  profile:    half-life %s, window %s, price bands %v, at most %d entries and %d event ids per user\n",
		r.HalfLife, r.Window, r.PriceBands, r.MaxEntries, r.MaxEvents)
	var acts []string
	for _, name := range slices.Sorted(maps.Keys(r.Actions)) {
		a := r.Actions[name]
		s := fmt.Sprintf("%s %g", name, a.Weight)
		if a.PerQuantity {
			s += " × quantity"
		}
		if a.MinRating > 0 {
			s += fmt.Sprintf(" (rating ≥ %d)", a.MinRating)
		}
		acts = append(acts, s)
	}
	fmt.Fprintf(w, "  actions:    %s\n", strings.Join(acts, ", "))
	for i, f := range r.Filters {
		effect := fmt.Sprintf("weight × %g", f.Multiply)
		if f.Ignore {
			effect = "ignored"
		}
		fmt.Fprintf(w, "  filter %d:   %s: %s\n", i+1, f.Name, effect)
	}
	fmt.Fprintf(w, "  scoring:    top %d, min affinity %g, min score %g, unscoped affinity %g, default price %d, low stock %d, low time %s, min interval %s\n",
		r.TopN, r.MinAffinity, r.MinScore, r.UnscopedAffinity, r.DefaultPrice, r.LowStock, r.LowTime, r.MinInterval)
	if r.AutoGrant.Enabled {
		only := "any batch"
		if len(r.AutoGrant.Batches) > 0 {
			only = strings.Join(slices.Sorted(maps.Keys(r.AutoGrant.Batches)), ", ")
		}
		fmt.Fprintf(w, "  auto-grant: on, round %s, min score %g, %s\n", r.AutoGrant.Round, r.AutoGrant.MinScore, only)
	} else {
		fmt.Fprintf(w, "  auto-grant: off\n")
	}
}

// showUser prints a user's profile and kept top N.
func showUser(ctx context.Context, cfgPath, user string) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	rules := recommend.DefaultRules()
	if cfg.Recommend.RulesFile != "" {
		if rules, err = recommend.LoadRules(cfg.Recommend.RulesFile); err != nil {
			return err
		}
	}
	rdb := newRedis(cfg.Redis)
	defer rdb.Close()
	store := recommend.NewStore(rdb, recommend.WithKeyPrefix(cfg.Redis.KeyPrefix))
	entries, err := store.Profile(ctx, user)
	if err != nil {
		return err
	}
	top, err := store.Top(ctx, user)
	if err != nil {
		return err
	}
	p := rules.ProfileAt(entries, time.Now())
	out := struct {
		UserID     string             `json:"user_id"`
		Revision   string             `json:"rules_revision"`
		Categories map[string]float64 `json:"categories"`
		Brands     map[string]float64 `json:"brands"`
		Models     map[string]float64 `json:"models"`
		PriceBands []float64          `json:"price_bands"`
		Top        *recommend.Set     `json:"top"`
	}{user, rules.Revision, p.Categories, p.Brands, p.Models, p.Bands, top}
	enc := json.NewEncoder(cmdStdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
