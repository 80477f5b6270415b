package stream

import (
	"fmt"
	"sync"
	"testing"
)

type def struct {
	id  string
	rev int64
}

func TestLatestKeepsTheHighestRevision(t *testing.T) {
	l := NewLatest(func(d *def) string { return d.id }, func(d *def) int64 { return d.rev })
	// Revisions of 20 definitions arrive in every order from 8 goroutines
	// (a live reader and re-reads): each ends at its highest revision.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for r := range 50 {
				rev := int64((r*7 + w*13) % 50)
				for k := range 20 {
					l.Put(&def{id: fmt.Sprint("d", k), rev: rev})
				}
			}
		})
	}
	wg.Wait()
	if l.Len() != 20 {
		t.Fatalf("%d definitions, want 20", l.Len())
	}
	for k := range 20 {
		if d := l.Get(fmt.Sprint("d", k)); d == nil || d.rev != 49 {
			t.Errorf("d%d holds %+v, want revision 49", k, d)
		}
	}
	if l.Put(&def{id: "d0", rev: 49}) || !l.Put(&def{id: "d0", rev: 50}) || l.Get("x") != nil {
		t.Error("Put took an equal revision, refused a higher one, or Get invented one")
	}
	all := l.All()
	if len(all) != 20 || all[0].id != "d0" || all[1].id != "d1" || all[2].id != "d10" || all[0].rev != 50 {
		t.Errorf("All: %d definitions, first %+v %+v %+v; want all 20 sorted by key", len(all), all[0], all[1], all[2])
	}
}
