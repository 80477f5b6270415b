package referral

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// formatDecision writes o as step.lua does, with its time field ms.
func formatDecision(o Outcome, ms string, kind byte) string {
	switch {
	case o.Reason != "":
		return "r|" + ms + "|" + o.Reason + "|" + o.Inviter
	case kind == OpBind:
		c := "0"
		if o.Counted {
			c = "1"
		}
		return "b|" + ms + "|" + c + "|" + strconv.FormatInt(o.Successful, 10) + "|" + formatRewards(o.Rewards)
	default:
		return "q|" + ms + "|" + o.Inviter + "|" + strconv.FormatInt(o.Successful, 10) + "|" + formatRewards(o.Rewards)
	}
}

// FuzzParseDecision feeds arbitrary remembered decisions to the parser: it
// never panics, refuses a refusal without a reason and a reward without a
// batch, and what it accepts means the same once written back the way
// step.lua writes it.
func FuzzParseDecision(f *testing.F) {
	for _, s := range []string{
		"r|1700000000000|already_bound|alice", "r|1|bad_token|", "b|1700000000000|1|3|3=B3;10=B10", "b|5|0|0|",
		"q|1700000000000|alice|2|2=B2", "q|1|a|1|", "b|x|1|1|", "r|1||", "b|1|1|1|3", "q|1|a|1|3=", "",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, v string, bind bool) {
		op := Op{Kind: OpQualify}
		if bind {
			op = Op{Kind: OpBind, Inviter: "inv"}
		}
		o, err := parseDecision(v, op)
		if err != nil {
			return
		}
		if o.Reason == "" && strings.HasPrefix(v, "r|") {
			t.Fatalf("%q: a refusal without a reason was accepted", v)
		}
		for _, r := range o.Rewards {
			if r.BatchID == "" {
				t.Fatalf("%q: a reward without a batch: %+v", v, o.Rewards)
			}
		}
		ms := strconv.FormatInt(o.At.UnixMilli(), 10)
		again, err := parseDecision(formatDecision(o, ms, op.Kind), op)
		if err != nil || !reflect.DeepEqual(again.Step, o.Step) || !again.At.Equal(o.At) {
			t.Fatalf("%q parses to %+v; written back it parses to %+v (%v)", v, o, again, err)
		}
	})
}
