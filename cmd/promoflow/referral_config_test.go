package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReferralConfigValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		rc   ReferralConfig
		want string // "" = valid
	}{
		{"defaults", ReferralConfig{}, ""},
		{"two keys", ReferralConfig{LinkKeys: []LinkKey{{ID: "k2", SecretEnv: "K2"}, {ID: "k1", SecretFile: "/run/k1"}}, SigningKey: "k2"}, ""},
		{"short ttl", ReferralConfig{DecisionTTL: time.Minute}, "decision_ttl"},
		{"url without token", ReferralConfig{LinkURL: "https://shop.example/r/"}, "link_url"},
		{"depth", ReferralConfig{MaxChainDepth: 20_000}, "max_chain_depth"},
		{"no secret", ReferralConfig{LinkKeys: []LinkKey{{ID: "k1"}}}, "secret_env or secret_file is required"},
		{"both secrets", ReferralConfig{LinkKeys: []LinkKey{{ID: "k1", SecretEnv: "K", SecretFile: "/f"}}}, "both set"},
		{"bad env name", ReferralConfig{LinkKeys: []LinkKey{{ID: "k1", SecretEnv: "A-B"}}}, "not an environment variable name"},
		{"repeated id", ReferralConfig{LinkKeys: []LinkKey{{ID: "k1", SecretEnv: "A"}, {ID: "k1", SecretEnv: "B"}}}, "listed twice"},
		{"missing id", ReferralConfig{LinkKeys: []LinkKey{{SecretEnv: "A"}}}, "id: required"},
		{"signing key not listed", ReferralConfig{LinkKeys: []LinkKey{{ID: "k1", SecretEnv: "A"}}, SigningKey: "k9"}, "signing_key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := c.rc
			rc.defaults()
			err := rc.validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error about %q", err, c.want)
			}
		})
	}
}

func TestReferralKeyring(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "k1")
	if err := os.WriteFile(good, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("0123456789abcdef0123456789abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"K2": "  fedcba9876543210fedcba9876543210  ", "SHORT": "too short"}
	getenv := func(k string) string { return env[k] }

	rc := ReferralConfig{LinkKeys: []LinkKey{{ID: "k2", SecretEnv: "K2"}, {ID: "k1", SecretFile: good}}}
	rc.defaults()
	k, err := rc.keyring(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if k.SigningKey() != "k2" || strings.Join(k.KeyIDs(), ",") != "k1,k2" {
		t.Errorf("signing %s with %v", k.SigningKey(), k.KeyIDs())
	}
	if _, err := k.Sign("a", "u", time.Now().Add(time.Hour)); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		name string
		key  LinkKey
		want string
	}{
		{"unset variable", LinkKey{ID: "k", SecretEnv: "NOPE"}, "is not set"},
		{"short secret", LinkKey{ID: "k", SecretEnv: "SHORT"}, "openssl rand"},
		{"missing file", LinkKey{ID: "k", SecretFile: filepath.Join(dir, "none")}, "no such file"},
		{"readable by others", LinkKey{ID: "k", SecretFile: open}, "chmod 600"},
	} {
		rc := ReferralConfig{LinkKeys: []LinkKey{c.key}}
		_, err := rc.keyring(getenv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "too short") {
			t.Errorf("%s: the error shows the secret: %v", c.name, err)
		}
	}
	empty := ReferralConfig{}
	if k, err := empty.keyring(getenv); err != nil || len(k.KeyIDs()) != 0 {
		t.Errorf("no keys: %v, %v", k, err)
	}
}

func TestReferralHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "referral"}, {"referral", "-h"}} {
		var out, errOut strings.Builder
		runMain(args, &out, &errOut)
		text := out.String() + errOut.String()
		for _, want := range []string{"define", "link", "status", "--inviter", "--resolve"} {
			if !strings.Contains(text, want) {
				t.Errorf("promoflow %s lacks %q:\n%s", strings.Join(args, " "), want, text)
			}
		}
	}
}
