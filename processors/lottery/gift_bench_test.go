package lottery

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// BenchmarkSend measures gift sends against the real Redis: b.N members
// each send once, in batches as a partition's poll would hand them over.
func BenchmarkSend(b *testing.B) {
	s, _ := giftStore(b)
	for _, batch := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := testenv.Context(b, 10*time.Minute)
			act := testenv.Name("bench")
			exp := time.Now().Add(time.Hour)
			n := b.N + 1
			for start := 0; start < n; start += 10_000 {
				in := make([]MemberInput, 0, 10_000)
				for i := start; i < min(start+10_000, n); i++ {
					in = append(in, MemberInput{AppID: "hr", EventID: fmt.Sprintf("m%d", i), UserID: fmt.Sprintf("u%d", i), Action: schemas.MemberAdd})
				}
				if _, err := s.Members(ctx, act, "t/0", 0, time.Now(), exp, in); err != nil {
					b.Fatal(err)
				}
			}
			in := make([]SendInput, 0, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in = append(in, SendInput{AppID: "app", EventID: fmt.Sprintf("s%d", i), UserID: fmt.Sprintf("u%d", i)})
				if len(in) == batch || i == b.N-1 {
					out, err := s.Send(ctx, act, "t/0", 1, time.Now(), exp, in)
					if err != nil {
						b.Fatal(err)
					}
					if !out[len(out)-1].Matched {
						b.Fatalf("send %d: %+v", i, out[len(out)-1])
					}
					in = in[:0]
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
		})
	}
}
