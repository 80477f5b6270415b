package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/processors/referral"
)

// ReferralConfig configures share-with-gift referrals: the referral
// processor, the share-link API of `promoflow serve` and `promoflow
// referral link` (docs/referrals.md).
type ReferralConfig struct {
	// DecisionTTL is how long an activity's state (bindings, counts,
	// decisions) is kept after its qualify_until (ends_at by default);
	// keep it above the events topic's retention. Default 192h (8 days).
	DecisionTTL time.Duration `yaml:"decision_ttl"`
	// LinkKeys are the keys that sign and verify share-link tokens. Secrets
	// never go in the file: secret_env names an environment variable,
	// secret_file an owner-only file (at least 32 bytes either way). List
	// old keys after the new one to rotate: links signed with them keep
	// verifying until they are removed. Default none: every token is
	// refused as bad_token and no link can be made.
	LinkKeys []LinkKey `yaml:"link_keys"`
	// SigningKey is the id of the key new links are signed with. Default
	// the first of link_keys.
	SigningKey string `yaml:"signing_key"`
	// LinkURL is the URL of a share link, its {token} replaced by the
	// token. Default "/r/{token}": a path the app's web front serves.
	LinkURL string `yaml:"link_url"`
	// MaxChainDepth bounds the walk up an inviter's chain that refuses
	// cycles; a longer chain refuses the binding (chain_too_deep).
	// Default 100.
	MaxChainDepth int `yaml:"max_chain_depth"`
}

// LinkKey is one share-link key: its id (carried in the tokens it signs)
// and where its secret is.
type LinkKey struct {
	ID         string `yaml:"id"`
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
}

func (r *ReferralConfig) defaults() {
	if r.DecisionTTL == 0 {
		r.DecisionTTL = 8 * 24 * time.Hour
	}
	if r.LinkURL == "" {
		r.LinkURL = "/r/{token}"
	}
	if r.MaxChainDepth == 0 {
		r.MaxChainDepth = referral.DefaultMaxChainDepth
	}
	if len(r.LinkKeys) == 0 {
		r.LinkKeys = nil
	}
}

// validate checks the section as written. The secrets themselves are read
// only by the commands that sign or verify (keyring).
func (r *ReferralConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("referral."+format, args...)) }
	if r.DecisionTTL < time.Hour {
		bad("decision_ttl %s: must be at least 1h (and above the events retention)", r.DecisionTTL)
	}
	if !strings.Contains(r.LinkURL, "{token}") {
		bad("link_url %.100q: must contain {token}", r.LinkURL)
	}
	if r.MaxChainDepth < 1 || r.MaxChainDepth > 10_000 {
		bad("max_chain_depth %d: want 1 to 10000", r.MaxChainDepth)
	}
	seen := map[string]bool{}
	for i, k := range r.LinkKeys {
		if seen[k.ID] {
			bad("link_keys[%d].id %q: listed twice", i, k.ID)
		}
		seen[k.ID] = true
		switch {
		case k.ID == "":
			bad("link_keys[%d].id: required", i)
		case k.SecretEnv != "" && k.SecretFile != "":
			bad("link_keys[%d] (%s): secret_env and secret_file are both set; give the secret one way", i, k.ID)
		case k.SecretEnv == "" && k.SecretFile == "":
			bad("link_keys[%d] (%s): secret_env or secret_file is required (secrets never go in this file)", i, k.ID)
		case k.SecretEnv != "" && !envName.MatchString(k.SecretEnv):
			bad("link_keys[%d].secret_env %.64q: not an environment variable name", i, k.SecretEnv)
		}
	}
	if r.SigningKey != "" && !seen[r.SigningKey] {
		bad("signing_key %q: not among link_keys", r.SigningKey)
	}
	return errors.Join(errs...)
}

// keyring reads every key's secret and returns the keyring. Errors name
// the variable or file, never the secret. Without keys it returns an empty
// keyring, which refuses every token.
func (r *ReferralConfig) keyring(getenv func(string) string) (*sharelink.Keyring, error) {
	var keys []sharelink.Key
	var errs []error
	for i, k := range r.LinkKeys {
		var secret string
		if k.SecretEnv != "" {
			if secret = strings.TrimSpace(getenv(k.SecretEnv)); secret == "" {
				errs = append(errs, fmt.Errorf("referral.link_keys[%d] (%s): the environment variable %s holding its secret is not set", i, k.ID, k.SecretEnv))
				continue
			}
		} else {
			var err error
			if secret, err = readSecretFile(k.SecretFile); err != nil {
				errs = append(errs, fmt.Errorf("referral.link_keys[%d] (%s).secret_file: %w", i, k.ID, err))
				continue
			}
		}
		keys = append(keys, sharelink.Key{ID: k.ID, Secret: []byte(secret)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	kr, err := sharelink.NewKeyring(r.SigningKey, keys...)
	if err != nil {
		return nil, fmt.Errorf("referral.link_keys: %w (make a secret with: openssl rand -hex 32)", err)
	}
	return kr, nil
}

// linkURL returns the URL of the link with token.
func (r *ReferralConfig) linkURL(token string) string {
	return strings.ReplaceAll(r.LinkURL, "{token}", token)
}
