package stream

import (
	"slices"
	"strings"
	"sync"
)

// Latest keeps the latest revision of each definition fed by a View of a
// compacted admin topic: a definition replaces the one cached under its
// key only with a strictly higher revision, so re-applying the topic (the
// View's periodic re-read) changes nothing. It is safe for concurrent use;
// cached values must not be modified.
type Latest[T any] struct {
	key func(*T) string
	rev func(*T) int64
	mu  sync.RWMutex
	m   map[string]*T
}

// NewLatest returns an empty cache of definitions identified by key and
// ordered by rev.
func NewLatest[T any](key func(*T) string, rev func(*T) int64) *Latest[T] {
	return &Latest[T]{key: key, rev: rev, m: map[string]*T{}}
}

// Put stores v unless a newer or equal revision is cached. It reports
// whether v was stored.
func (l *Latest[T]) Put(v *T) bool {
	k := l.key(v)
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.m[k]; ok && l.rev(cur) >= l.rev(v) {
		return false
	}
	l.m[k] = v
	return true
}

// Get returns the definition cached under key, or nil.
func (l *Latest[T]) Get(key string) *T {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.m[key]
}

// Len returns the number of definitions cached.
func (l *Latest[T]) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.m)
}

// All returns every cached definition, sorted by key.
func (l *Latest[T]) All() []*T {
	l.mu.RLock()
	out := make([]*T, 0, len(l.m))
	for _, v := range l.m {
		out = append(out, v)
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b *T) int { return strings.Compare(l.key(a), l.key(b)) })
	return out
}
