package recommend

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/schemas"
)

// TestScriptsOnMiniredis: the embedded default (`promoflow demo` without a
// Redis server) runs the same scripts on miniredis; they must decide as on
// the real Redis, byte for byte.
func TestScriptsOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	mini := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { mini.Close() })
	real, prefix := testRedis(t)
	fixtures := []*fixture{newFixtureOn(t, mini, "pf", handlerRules), newFixtureOn(t, real, prefix, handlerRules)}
	var envs []*schemas.Envelope
	for u := range 30 {
		for i := range 4 {
			envs = append(envs, behaviour(t, fmt.Sprintf("u%d-%d", u, i), t0.Add(-time.Duration(u*7+i)*time.Hour), schemas.BehaviourRecorded{
				UserID: fmt.Sprint("u", u), Action: []string{"browse", "cart", "order", "review"}[i], Category: []string{"phone", "tv"}[(u+i)%2],
				Brand: []string{"acme", "zeta", ""}[u%3], Price: int64(5000 + 20000*((u+i)%5)), Quantity: 1, Rating: 5,
			}))
		}
	}
	var outs [2][][]byte
	for round := range 2 { // the second is a redelivery
		for k, f := range fixtures {
			for _, rec := range f.handle(batchOf(0, 1, envs...)).Out {
				outs[k] = append(outs[k], rec.Value)
			}
			if st := f.p.Stats(); round == 1 && (st.Counted != 120 || st.Duplicates != 120) {
				t.Errorf("fixture %d: stats %+v", k, st)
			}
		}
	}
	if len(outs[0]) == 0 || len(outs[0]) != len(outs[1]) {
		t.Fatalf("miniredis emitted %d records, Redis %d", len(outs[0]), len(outs[1]))
	}
	for i := range outs[0] {
		if !bytes.Equal(outs[0][i], outs[1][i]) {
			t.Fatalf("record %d differs:\nminiredis %s\nredis     %s", i, outs[0][i], outs[1][i])
		}
	}
}
