package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
)

// TestDemoWithStandins runs the demo as it runs on a machine with nothing
// but Go: embedded Kafka, miniredis and in-memory sinks.
func TestDemoWithStandins(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	s := scenario{RunID: "t1", Claims: 3000, Users: 1000, HotStock: 200, HotShare: 0.5, Batches: 2,
		DupRate: 0.1, Malformed: true, Producers: 2, AppID: "demo", LotteryUsers: 2000, NotifyUsers: 100}
	var out bytes.Buffer
	rep, err := runScenario(ctx, "", s, "always", 2*time.Minute, slog.LevelError, &out, demoOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	rep.print(&out)
	if len(rep.breaches) > 0 {
		t.Fatalf("invariants broken: %v\n%s", rep.breaches, out.String())
	}
	for _, want := range []string{"stand-in", "miniredis", "embedded", "invariants       OK", "verify ok        winners", "each winner once", "Notification fan-out skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if l := rep.lottery; l == nil || l.draw.Participants != 2000 || l.draw.Winners != 333 || l.draw.Trigger != "scheduled" {
		t.Errorf("lottery part: %+v", l)
	}
	if rep.snap.hotGrants != 200 {
		t.Errorf("hot batch granted %d, want its stock 200 (3000 claims, half on it)", rep.snap.hotGrants)
	}
}
