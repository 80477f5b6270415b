package verify

import (
	"container/heap"
	"context"
	"strings"
)

// PageSize is how many keys one page of a sorted stream carries.
const PageSize = 5000

// cursor walks one sorted stream (one shard table, or ClickHouse) page by
// page: fetch returns up to limit items strictly after the last one it
// returned before (after is nil for the first page), in ascending order. A
// page shorter than limit ends the stream. It holds one page at a time.
type cursor[T any] struct {
	fetch func(ctx context.Context, after *T, limit int) ([]T, error)
	limit int
	page  []T
	i     int
	last  *T
	eof   bool
}

func newCursor[T any](limit int, fetch func(ctx context.Context, after *T, limit int) ([]T, error)) *cursor[T] {
	return &cursor[T]{fetch: fetch, limit: max(1, limit)}
}

// peek returns the cursor's current item, fetching a page when needed; ok
// is false at the end of the stream.
func (c *cursor[T]) peek(ctx context.Context) (v T, ok bool, err error) {
	for c.i >= len(c.page) {
		if c.eof {
			return v, false, nil
		}
		page, err := c.fetch(ctx, c.last, c.limit)
		if err != nil {
			return v, false, err
		}
		if len(page) > c.limit {
			page = page[:c.limit]
		}
		c.page, c.i = page, 0
		c.eof = len(page) < c.limit
		if len(page) > 0 {
			last := page[len(page)-1]
			c.last = &last
		}
	}
	return c.page[c.i], true, nil
}

func (c *cursor[T]) advance() { c.i++ }

// merger merges sorted cursors into one sorted stream with a heap: next
// returns the smallest current item of all cursors and the index of the
// cursor it came from. Equal items come one after another.
type merger[T any] struct {
	cursors []*cursor[T]
	cmp     func(a, b T) int
	h       mergeHeap[T]
	started bool
}

func newMerger[T any](cmp func(a, b T) int, cursors ...*cursor[T]) *merger[T] {
	return &merger[T]{cursors: cursors, cmp: cmp, h: mergeHeap[T]{cmp: cmp}}
}

type mergeItem[T any] struct {
	v   T
	src int
}

type mergeHeap[T any] struct {
	items []mergeItem[T]
	cmp   func(a, b T) int
}

func (h *mergeHeap[T]) Len() int { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool {
	if c := h.cmp(h.items[i].v, h.items[j].v); c != 0 {
		return c < 0
	}
	return h.items[i].src < h.items[j].src
}
func (h *mergeHeap[T]) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap[T]) Push(x any)    { h.items = append(h.items, x.(mergeItem[T])) }
func (h *mergeHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// push puts cursor src's current item on the heap, if it has one.
func (m *merger[T]) push(ctx context.Context, src int) error {
	v, ok, err := m.cursors[src].peek(ctx)
	if err != nil || !ok {
		return err
	}
	heap.Push(&m.h, mergeItem[T]{v, src})
	return nil
}

// next returns the smallest item left and its cursor; ok is false when every
// cursor is done.
func (m *merger[T]) next(ctx context.Context) (v T, src int, ok bool, err error) {
	if !m.started {
		m.started = true
		for i := range m.cursors {
			if err := m.push(ctx, i); err != nil {
				return v, 0, false, err
			}
		}
	}
	if m.h.Len() == 0 {
		return v, 0, false, nil
	}
	it := heap.Pop(&m.h).(mergeItem[T])
	m.cursors[it.src].advance()
	if err := m.push(ctx, it.src); err != nil {
		return v, 0, false, err
	}
	return it.v, it.src, true, nil
}

// group is a run of equal keys from a merged stream: the key and how many
// items carried it (one per stream for unique keys).
type group[T any] struct {
	first T
	n     int
}

// grouper turns a merged stream into runs of items with equal keys.
type grouper[T any] struct {
	m          *merger[T]
	same       func(a, b T) bool
	pending    T
	pendingSrc int
	has        bool // pending holds the first item of the next run
	done       bool
}

func newGrouper[T any](m *merger[T], same func(a, b T) bool) *grouper[T] {
	return &grouper[T]{m: m, same: same}
}

// next returns the next run, calling each (when not nil) with every item
// of it and the stream it came from; ok is false at the end.
func (g *grouper[T]) next(ctx context.Context, each func(v T, src int)) (grp group[T], ok bool, err error) {
	if !g.has {
		if g.done {
			return grp, false, nil
		}
		v, src, ok, err := g.m.next(ctx)
		if err != nil || !ok {
			g.done = true
			return grp, false, err
		}
		g.pending, g.pendingSrc, g.has = v, src, true
	}
	grp = group[T]{first: g.pending, n: 1}
	g.has = false
	if each != nil {
		each(g.pending, g.pendingSrc)
	}
	for {
		v, src, ok, err := g.m.next(ctx)
		if err != nil {
			return grp, false, err
		}
		if !ok {
			g.done = true
			return grp, true, nil
		}
		if !g.same(grp.first, v) {
			g.pending, g.pendingSrc, g.has = v, src, true
			return grp, true, nil
		}
		grp.n++
		if each != nil {
			each(v, src)
		}
	}
}

// idSide is one side of a comparison of result ids: the merged, grouped
// streams of one store.
type idSide struct {
	g *grouper[string]
}

func newIDSide(cursors ...*cursor[string]) *idSide {
	return &idSide{g: newGrouper(newMerger(strings.Compare, cursors...), func(a, b string) bool { return a == b })}
}

// diff is what comparing two sets of result ids found.
type diff struct {
	// Left and Right count the distinct ids on each side.
	Left, Right int64
	// OnlyLeft and OnlyRight count the ids one side lacks.
	OnlyLeft, OnlyRight int64
	// LeftRepeats counts the ids held by more than one of the left side's
	// streams (a result in two shard tables), RightRepeats likewise.
	LeftRepeats, RightRepeats int64
}

// compareIDs walks two sorted sides in step and calls onlyLeft, onlyRight
// and repeated (side 0 left, 1 right, n streams) as it finds differences.
// Memory is one page per cursor.
func compareIDs(ctx context.Context, left, right *idSide, onlyLeft, onlyRight func(id string), repeated func(side int, id string, n int)) (diff, error) {
	var d diff
	l, lok, err := left.g.next(ctx, nil)
	if err != nil {
		return d, err
	}
	r, rok, err := right.g.next(ctx, nil)
	if err != nil {
		return d, err
	}
	for lok || rok {
		c := 0
		switch {
		case !lok:
			c = 1
		case !rok:
			c = -1
		default:
			c = strings.Compare(l.first, r.first)
		}
		if c <= 0 {
			d.Left++
			if l.n > 1 {
				d.LeftRepeats++
				repeated(0, l.first, l.n)
			}
		}
		if c >= 0 {
			d.Right++
			if r.n > 1 {
				d.RightRepeats++
				repeated(1, r.first, r.n)
			}
		}
		switch {
		case c < 0:
			d.OnlyLeft++
			onlyLeft(l.first)
		case c > 0:
			d.OnlyRight++
			onlyRight(r.first)
		}
		if c <= 0 {
			if l, lok, err = left.g.next(ctx, nil); err != nil {
				return d, err
			}
		}
		if c >= 0 {
			if r, rok, err = right.g.next(ctx, nil); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}
