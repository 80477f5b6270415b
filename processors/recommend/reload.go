package recommend

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRulesPoll is how often a Watcher checks its file by default.
const DefaultRulesPoll = 5 * time.Second

// LoadRules reads and parses the rules file at path.
func LoadRules(path string) (*Rules, error) {
	b, err := readRules(path)
	if err != nil {
		return nil, err
	}
	return ParseRules(path, b)
}

func readRules(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading recommendation rules: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxRulesBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading recommendation rules %s: %w", path, err)
	}
	return b, nil
}

// Watcher keeps the rules of a file in force without a restart: it loads
// them when created, and again when the file changes (its modification
// time or size, checked every poll interval by Run) or when Reload is
// called (on SIGHUP). A file that does not parse or validate is logged with
// every problem and changes nothing: the rules in force stay. It is a
// RulesSource, safe for concurrent use.
type Watcher struct {
	path string
	poll time.Duration
	log  *slog.Logger
	cur  atomic.Pointer[Rules]

	mu      sync.Mutex // one reload at a time
	modTime time.Time
	size    int64
	lastErr error

	reloads atomic.Int64
}

// NewWatcher loads the rules at path; it fails if they are invalid. poll
// is how often Run checks the file (DefaultRulesPoll when 0 or less).
func NewWatcher(path string, poll time.Duration, log *slog.Logger) (*Watcher, error) {
	if poll <= 0 {
		poll = DefaultRulesPoll
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{path: path, poll: poll, log: log.With("rules", path)}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading recommendation rules: %w", err)
	}
	r, err := LoadRules(path)
	if err != nil {
		return nil, err
	}
	w.cur.Store(r)
	w.modTime, w.size = fi.ModTime(), fi.Size()
	return w, nil
}

// Rules returns the rules in force.
func (w *Watcher) Rules() *Rules { return w.cur.Load() }

// Reloads returns how many times new rules were put in force.
func (w *Watcher) Reloads() int64 { return w.reloads.Load() }

// Reload reads the file now. It reports whether new rules are in force
// (false when the file still holds the rules in force), and the error that
// kept the file's rules out (the old ones stay).
func (w *Watcher) Reload() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fi, err := os.Stat(w.path); err == nil {
		w.modTime, w.size = fi.ModTime(), fi.Size()
	}
	old := w.cur.Load()
	r, err := LoadRules(w.path)
	if err != nil {
		if w.lastErr == nil || w.lastErr.Error() != err.Error() {
			w.log.Error("recommendation rules not reloaded; the rules in force stay", "revision", old.Revision, "err", err)
		}
		w.lastErr = err
		return false, err
	}
	w.lastErr = nil
	if r.Revision == old.Revision {
		return false, nil
	}
	w.cur.Store(r)
	w.reloads.Add(1)
	w.log.Info("recommendation rules reloaded", "revision", r.Revision, "previous", old.Revision)
	return true, nil
}

// Run checks the file every poll interval until ctx ends, reloading it when
// its modification time or size changed.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(w.path)
		if err != nil {
			w.mu.Lock()
			if w.lastErr == nil {
				w.log.Error("recommendation rules file unreadable; the rules in force stay", "err", err)
				w.lastErr = err
			}
			w.mu.Unlock()
			continue
		}
		w.mu.Lock()
		changed := !fi.ModTime().Equal(w.modTime) || fi.Size() != w.size
		w.mu.Unlock()
		if changed {
			_, _ = w.Reload() // logged
		}
	}
}
