package recommend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeRules(t *testing.T, path, body string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// Distinct modification times, whatever the file system's resolution.
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherReloadsOnChangeAndKeepsRulesOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	base := time.Now().Add(-time.Hour)
	writeRules(t, path, "version: 1\nactions: {order: {weight: 1}}\n", base)
	w, err := NewWatcher(path, 10*time.Millisecond, quiet())
	if err != nil {
		t.Fatal(err)
	}
	first := w.Rules()
	if first.Actions["order"].Weight != 1 {
		t.Fatalf("loaded %+v", first.Actions)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// An edit is picked up by the poll.
	writeRules(t, path, "version: 1\nactions: {order: {weight: 7}}\n", base.Add(time.Minute))
	waitFor("the edit", func() bool { return w.Rules().Actions["order"].Weight == 7 })
	second := w.Rules()
	if second.Revision == first.Revision || w.Reloads() != 1 {
		t.Errorf("revision %s after %s, %d reloads", second.Revision, first.Revision, w.Reloads())
	}

	// A broken edit changes nothing: the rules in force stay.
	writeRules(t, path, "version: 1\nactions:\n  order: {weight: -1}\n", base.Add(2*time.Minute))
	time.Sleep(100 * time.Millisecond)
	if w.Rules() != second {
		t.Errorf("a broken file replaced the rules in force")
	}
	changed, err := w.Reload() // SIGHUP
	if changed || !errors.Is(err, ErrInvalidRules) || !strings.Contains(err.Error(), "rules.yaml:3: actions.order.weight") {
		t.Errorf("Reload of a broken file = %v, %v", changed, err)
	}

	// Fixed, and reloaded at once (SIGHUP), without waiting for the poll.
	if err := os.WriteFile(path, []byte("version: 1\nactions: {order: {weight: 9}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := w.Reload(); !changed || err != nil || w.Rules().Actions["order"].Weight != 9 {
		t.Errorf("Reload = %v, %v; weight %g", changed, err, w.Rules().Actions["order"].Weight)
	}
	// Reloading the same content is not a change.
	if changed, err := w.Reload(); changed || err != nil {
		t.Errorf("Reload of an unchanged file = %v, %v", changed, err)
	}
}

func TestNewWatcherRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewWatcher(filepath.Join(dir, "missing.yaml"), 0, nil); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeRules(t, bad, "version: 1\n", time.Now())
	if _, err := NewWatcher(bad, 0, nil); !errors.Is(err, ErrInvalidRules) || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("invalid file: %v", err)
	}
}

// TestDefaultRulesFileIsTheDocumentedExample keeps the embedded rules and
// the example of docs/recommendations.md the same file.
func TestDefaultRulesFileIsTheDocumentedExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/recommendations.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(DefaultRulesYAML)) {
		t.Error("docs/recommendations.md does not show default_rules.yaml verbatim")
	}
}
