package fair

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchUsers returns n distinct ids in a fixed shuffled order, so Draw's
// normalization sorts for real, as it would for ids in join order.
func benchUsers(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%07d", i)
	}
	rng := rand.New(rand.NewPCG(42, 42))
	rng.Shuffle(n, func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
	return ids
}

func benchDraw(b *testing.B, users []string, tiers []Tier) {
	seed := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if len(Draw(seed, "bench", users, tiers)) == 0 {
			b.Fatal("no winners")
		}
	}
	b.ReportMetric(float64(len(users))*float64(b.N)/b.Elapsed().Seconds(), "participants/s")
}

// BenchmarkDraw1M draws 10,000 winners in three tiers among a million
// participants.
func BenchmarkDraw1M(b *testing.B) {
	benchDraw(b, benchUsers(1_000_000), []Tier{{"gold", 10}, {"silver", 990}, {"bronze", 9000}})
}

// BenchmarkDrawAll1M draws half of a million participants.
func BenchmarkDrawAll1M(b *testing.B) {
	benchDraw(b, benchUsers(1_000_000), []Tier{{"half", 500_000}})
}

// BenchmarkRoll measures one instant-win roll.
func BenchmarkRoll(b *testing.B) {
	seed := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		Roll(seed, "bench", "app", "event-0123456789")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rolls/s")
}
