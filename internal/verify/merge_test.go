package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// pagedIDs serves sorted ids in pages as a store would: strictly after the
// last id of the previous page, at most limit.
func pagedIDs(ids []string, calls *int) func(ctx context.Context, after *string, limit int) ([]string, error) {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	return func(_ context.Context, after *string, limit int) ([]string, error) {
		if calls != nil {
			*calls++
		}
		i := 0
		if after != nil {
			i, _ = slices.BinarySearch(sorted, *after)
			for i < len(sorted) && sorted[i] <= *after {
				i++
			}
		}
		return slices.Clone(sorted[i:min(len(sorted), i+limit)]), nil
	}
}

func cursorsOf(limit int, shards ...[]string) []*cursor[string] {
	out := make([]*cursor[string], len(shards))
	for i, s := range shards {
		out[i] = newCursor(limit, pagedIDs(s, nil))
	}
	return out
}

func TestMergerMergesSortedStreams(t *testing.T) {
	ctx := context.Background()
	for _, limit := range []int{1, 2, 3, 1000} {
		m := newMerger(strings.Compare, cursorsOf(limit, []string{"b", "d", "f"}, nil, []string{"a", "d", "z"}, []string{"c"})...)
		var got []string
		var srcs []int
		for {
			v, src, ok, err := m.next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, v)
			srcs = append(srcs, src)
		}
		if want := []string{"a", "b", "c", "d", "d", "f", "z"}; !slices.Equal(got, want) {
			t.Fatalf("limit %d: merged %v, want %v", limit, got, want)
		}
		if want := []int{2, 0, 3, 0, 2, 0, 2}; !slices.Equal(srcs, want) {
			t.Fatalf("limit %d: sources %v, want %v", limit, srcs, want)
		}
	}
}

func TestCursorStopsOnShortPage(t *testing.T) {
	var calls int
	c := newCursor(2, pagedIDs([]string{"a", "b", "c", "d"}, &calls))
	ctx := context.Background()
	var got []string
	for {
		v, ok, err := c.peek(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, v)
		c.advance()
	}
	// Pages: [a b] [c d] [] — the empty page ends it.
	if !slices.Equal(got, []string{"a", "b", "c", "d"}) || calls != 3 {
		t.Fatalf("got %v in %d calls", got, calls)
	}
	calls = 0
	c = newCursor(3, pagedIDs([]string{"a", "b", "c", "d"}, &calls))
	for {
		_, ok, _ := c.peek(ctx)
		if !ok {
			break
		}
		c.advance()
	}
	if calls != 2 { // [a b c] [d]: short, done
		t.Fatalf("%d calls, want 2", calls)
	}
}

func TestCompareIDs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		left         [][]string
		right        [][]string
		onlyL, onlyR []string
		repeatsL     []string
		wantL, wantR int64
		wantLRep     int64
	}{
		{name: "equal", left: [][]string{{"a", "c"}, {"b"}}, right: [][]string{{"a", "b", "c"}}, wantL: 3, wantR: 3},
		{name: "empty", left: [][]string{nil, nil}, right: [][]string{nil}},
		{name: "left only", left: [][]string{{"a"}}, right: [][]string{nil}, onlyL: []string{"a"}, wantL: 1},
		{name: "right only", left: [][]string{nil}, right: [][]string{{"x", "y"}}, onlyR: []string{"x", "y"}, wantR: 2},
		{name: "both sides differ", left: [][]string{{"a", "d"}, {"c", "e"}}, right: [][]string{{"b", "c", "d", "f"}},
			onlyL: []string{"a", "e"}, onlyR: []string{"b", "f"}, wantL: 4, wantR: 4},
		{name: "one id in two shards", left: [][]string{{"a", "b"}, {"b"}}, right: [][]string{{"a", "b"}},
			repeatsL: []string{"b"}, wantL: 2, wantR: 2, wantLRep: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{1, 2, 5000} {
				var onlyL, onlyR, rep []string
				d, err := compareIDs(ctx, newIDSide(cursorsOf(limit, tc.left...)...), newIDSide(cursorsOf(limit, tc.right...)...),
					func(id string) { onlyL = append(onlyL, id) },
					func(id string) { onlyR = append(onlyR, id) },
					func(side int, id string, n int) {
						if side == 0 {
							rep = append(rep, id)
						}
					})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(onlyL, tc.onlyL) || !slices.Equal(onlyR, tc.onlyR) || !slices.Equal(rep, tc.repeatsL) {
					t.Fatalf("limit %d: only left %v right %v repeats %v", limit, onlyL, onlyR, rep)
				}
				if d.Left != tc.wantL || d.Right != tc.wantR || d.LeftRepeats != tc.wantLRep ||
					d.OnlyLeft != int64(len(tc.onlyL)) || d.OnlyRight != int64(len(tc.onlyR)) {
					t.Fatalf("limit %d: diff %+v", limit, d)
				}
			}
		})
	}
}

// TestCompareIDsRandom checks the merge against sets computed in memory,
// over random shard layouts and page sizes.
func TestCompareIDsRandom(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		shards := 1 + rng.IntN(6)
		left := make([][]string, shards)
		var right []string
		wantOnlyL, wantOnlyR := map[string]bool{}, map[string]bool{}
		ids := 1 + rng.IntN(300)
		for i := range ids {
			id := fmt.Sprintf("%032x", rng.Uint64()^uint64(i))
			inLeft, inRight := rng.IntN(10) > 0, rng.IntN(10) > 0
			if inLeft {
				s := rng.IntN(shards)
				left[s] = append(left[s], id)
			}
			if inRight {
				right = append(right, id)
			}
			switch {
			case inLeft && !inRight:
				wantOnlyL[id] = true
			case inRight && !inLeft:
				wantOnlyR[id] = true
			}
		}
		limit := 1 + rng.IntN(40)
		gotL, gotR := map[string]bool{}, map[string]bool{}
		var prevL, prevR string
		d, err := compareIDs(ctx, newIDSide(cursorsOf(limit, left...)...), newIDSide(cursorsOf(limit, right)...),
			func(id string) {
				if id <= prevL {
					t.Fatalf("round %d: only-left ids out of order", round)
				}
				prevL = id
				gotL[id] = true
			},
			func(id string) {
				if id <= prevR {
					t.Fatalf("round %d: only-right ids out of order", round)
				}
				prevR = id
				gotR[id] = true
			},
			func(int, string, int) { t.Fatalf("round %d: no id is repeated", round) })
		if err != nil {
			t.Fatal(err)
		}
		if len(gotL) != len(wantOnlyL) || len(gotR) != len(wantOnlyR) || d.OnlyLeft != int64(len(wantOnlyL)) || d.OnlyRight != int64(len(wantOnlyR)) {
			t.Fatalf("round %d: only left %d/%d, right %d/%d", round, len(gotL), len(wantOnlyL), len(gotR), len(wantOnlyR))
		}
		for id := range wantOnlyL {
			if !gotL[id] {
				t.Fatalf("round %d: missed %s", round, id)
			}
		}
		for id := range wantOnlyR {
			if !gotR[id] {
				t.Fatalf("round %d: missed %s", round, id)
			}
		}
		var total int
		for _, s := range left {
			total += len(s)
		}
		if d.Left != int64(total) || d.Right != int64(len(right)) {
			t.Fatalf("round %d: counted %d/%d, want %d/%d", round, d.Left, d.Right, total, len(right))
		}
	}
}

// TestBucketsCoverEveryID checks that the ranges meet exactly and cover
// every id, and that bucketOf puts ids in order.
func TestBucketsCoverEveryID(t *testing.T) {
	ids := []string{"", "0", "00", "0f", "0A", "0g", "1", "9z", "a", "ab12", "ff", "fff", "ffff", "g", "Z", "~", "\x00", "\xff",
		"00112233445566778899aabbccddeeff", "ffffffffffffffffffffffffffffffff"}
	for _, n := range []int{1, 2, 16, 256, 1024, MaxRanges} {
		rs := idRanges(n)
		if len(rs) != n || rs[0][0] != "" || rs[n-1][1] != "" {
			t.Fatalf("%d ranges: %v…", n, rs[:min(3, len(rs))])
		}
		for i := 1; i < n; i++ {
			if rs[i-1][1] != rs[i][0] || rs[i][0] <= rs[i-1][0] {
				t.Fatalf("%d ranges: range %d ends at %q, range %d starts at %q", n, i-1, rs[i-1][1], i, rs[i][0])
			}
		}
		for _, id := range ids {
			in := 0
			for _, r := range rs {
				if id >= r[0] && (r[1] == "" || id < r[1]) {
					in++
				}
			}
			if in != 1 {
				t.Fatalf("%d ranges: %q is in %d of them", n, id, in)
			}
		}
	}
	for _, tc := range []struct {
		rows int64
		want int
	}{{0, 1}, {4 * 100, 1}, {4*100 + 1, 2}, {30_000, 128}, {1 << 40, MaxRanges}} {
		if got := rangesFor(tc.rows, 100); got != tc.want {
			t.Errorf("rangesFor(%d, 100) = %d, want %d", tc.rows, got, tc.want)
		}
	}
	slices.Sort(ids)
	prev := 0
	for _, id := range ids {
		b := bucketOf(id)
		if b < prev {
			t.Fatalf("bucketOf(%q) = %d, below the bucket of a smaller id (%d)", id, b, prev)
		}
		prev = b
	}
	if bucketOf("00") != 0 || bucketOf("a1") != 0xa1 || bucketOf("ffff") != 255 || bucketOf("0g") != 0x0f || bucketOf("zz") != 255 {
		t.Fatal("bucketOf of hex prefixes")
	}
	k, ok := keyOf("00112233445566778899aabbccddeeff")
	if !ok || k.String() != "00112233445566778899aabbccddeeff" || k.bucket() != 0 {
		t.Fatalf("keyOf: %v %v", k, ok)
	}
	for _, bad := range []string{"", "0011", "00112233445566778899AABBCCDDEEFF", "00112233445566778899aabbccddeefg"} {
		if _, ok := keyOf(bad); ok {
			t.Errorf("keyOf(%q) accepted", bad)
		}
	}
}

func TestPasses(t *testing.T) {
	for _, per := range []int{0, 1, 3, 100, 256, 1000} {
		ps := bucketGroups(per)
		next := 0
		for _, p := range ps {
			if p[0] != next || p[1] <= p[0] || p[1]-p[0] > max(1, min(per, Buckets)) {
				t.Fatalf("per %d: passes %v", per, ps)
			}
			next = p[1]
		}
		if next != Buckets {
			t.Fatalf("per %d: passes end at %d", per, next)
		}
	}
	if bucketsPerGroup(10) != Buckets || bucketsPerGroup(MaxIDsInMemory) != Buckets {
		t.Fatal("small inputs take one pass")
	}
	for _, ids := range []int64{MaxIDsInMemory + 1, 10 * MaxIDsInMemory, 1000 * MaxIDsInMemory} {
		per := bucketsPerGroup(ids)
		if perPass := ids * int64(per) / Buckets; perPass > MaxIDsInMemory && per > 1 {
			t.Fatalf("%d ids: %d buckets a pass hold about %d ids", ids, per, perPass)
		}
	}
}
