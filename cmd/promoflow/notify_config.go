package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/promoflow/promoflow/processors/notify"
	"github.com/promoflow/promoflow/schemas"
)

// NotifyConfig tunes notification fan-out (docs/notifications.md).
type NotifyConfig struct {
	// ShardSize is the users per shard when a request does not say.
	// Default 1000, at most 5000.
	ShardSize int `yaml:"shard_size"`
	// StepShards is how many shards the planner writes per step before it
	// bookmarks and yields its partition. Default 100.
	StepShards int `yaml:"step_shards"`
	// Keep is how long a user's record of a campaign (sent, capped,
	// failed) and a campaign's progress stay in Redis after the last
	// write: the window in which a repeated request or a replayed shard
	// sends nothing. Above notify.shards' retention (7 days) and the
	// longest cap window. Default 192h.
	Keep time.Duration `yaml:"keep"`
	// Lease is how long a sender's reservation of a user holds against
	// other senders. Default 5m.
	Lease time.Duration `yaml:"lease"`
	// Caps are the frequency caps per user across campaigns: at most max
	// notifications within window. Default none.
	Caps []notify.Cap `yaml:"caps"`
	// Sender is "log" (JSON lines to log_file) or "webhook". Default log.
	Sender string `yaml:"sender"`
	// LogFile is where the log sender writes; "-" is standard output.
	// Default "-".
	LogFile string `yaml:"log_file"`
	// Webhook configures the webhook sender.
	Webhook WebhookConfig `yaml:"webhook"`
	// Templates are the notifications campaigns may send, by name.
	// Default none.
	Templates map[string]notify.Template `yaml:"templates"`
}

// WebhookConfig configures the webhook sender.
type WebhookConfig struct {
	// URL receives each shard's messages as one POST.
	URL string `yaml:"url"`
	// SecretEnv names the environment variable, or SecretFile the
	// owner-only file, holding the HMAC secret (at least 32 bytes).
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
	// Timeout bounds one request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBatch bounds the messages of one request. Default 1000.
	MaxBatch int `yaml:"max_batch"`
}

func (n *NotifyConfig) defaults() {
	if n.ShardSize == 0 {
		n.ShardSize = 1000
	}
	if n.StepShards == 0 {
		n.StepShards = 100
	}
	if n.Keep == 0 {
		n.Keep = 8 * 24 * time.Hour
	}
	if n.Lease == 0 {
		n.Lease = 5 * time.Minute
	}
	if n.Sender == "" {
		n.Sender = "log"
	}
	if n.LogFile == "" {
		n.LogFile = "-"
	}
	if n.Webhook.Timeout == 0 {
		n.Webhook.Timeout = 10 * time.Second
	}
	if n.Webhook.MaxBatch == 0 {
		n.Webhook.MaxBatch = 1000
	}
}

func (n *NotifyConfig) validate() error {
	var errs []error
	if n.ShardSize < 1 || n.ShardSize > schemas.MaxNotifyShardUsers {
		errs = append(errs, fmt.Errorf("notify.shard_size %d: must be from 1 to %d", n.ShardSize, schemas.MaxNotifyShardUsers))
	}
	if n.StepShards < 1 || n.StepShards > 10_000 {
		errs = append(errs, fmt.Errorf("notify.step_shards %d: must be from 1 to 10000", n.StepShards))
	}
	if n.Lease < time.Second || n.Lease >= n.Keep {
		errs = append(errs, fmt.Errorf("notify.lease %s: must be at least 1s and below notify.keep (%s)", n.Lease, n.Keep))
	}
	for i, c := range n.Caps {
		if c.Window <= 0 || c.Max < 1 {
			errs = append(errs, fmt.Errorf("notify.caps[%d]: want a positive window and max, got %s and %d", i, c.Window, c.Max))
		}
		if c.Window > n.Keep {
			errs = append(errs, fmt.Errorf("notify.caps[%d]: window %s is longer than notify.keep %s, which forgets the sends it counts", i, c.Window, n.Keep))
		}
	}
	switch n.Sender {
	case "log":
	case "webhook":
		u, err := url.Parse(n.Webhook.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("notify.webhook.url %q: want an http(s) URL", n.Webhook.URL))
		}
		if (n.Webhook.SecretEnv == "") == (n.Webhook.SecretFile == "") {
			errs = append(errs, errors.New("notify.webhook: set exactly one of secret_env and secret_file"))
		}
	default:
		errs = append(errs, fmt.Errorf("notify.sender %q: want log or webhook", n.Sender))
	}
	if _, err := notify.CompileTemplates(n.Templates); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sender builds the configured sender; close releases what it opened.
func (n *NotifyConfig) sender(getenv func(string) string) (_ notify.Sender, close func() error, err error) {
	nop := func() error { return nil }
	if n.Sender == "webhook" {
		var secret string
		if n.Webhook.SecretEnv != "" {
			if secret = strings.TrimSpace(getenv(n.Webhook.SecretEnv)); secret == "" {
				return nil, nil, fmt.Errorf("notify.webhook: the environment variable %s holding its secret is not set", n.Webhook.SecretEnv)
			}
		} else if secret, err = readSecretFile(n.Webhook.SecretFile); err != nil {
			return nil, nil, fmt.Errorf("notify.webhook.secret_file: %w", err)
		}
		if len(secret) < 32 {
			return nil, nil, errors.New("notify.webhook: the secret must be at least 32 bytes (make one with: openssl rand -hex 32)")
		}
		return &notify.WebhookSender{URL: n.Webhook.URL, Secret: []byte(secret), MaxBatch: n.Webhook.MaxBatch,
			Client: &http.Client{Timeout: n.Webhook.Timeout}}, nop, nil
	}
	if n.LogFile == "-" {
		return notify.NewLogSender(os.Stdout), nop, nil
	}
	f, err := os.OpenFile(n.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("notify.log_file: %w", err)
	}
	return notify.NewLogSender(f), f.Close, nil
}
