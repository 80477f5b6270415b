package schemas

import (
	"regexp"
	"testing"
)

// TestPatternMatcherAgreesWithRegexp checks the byte-table matcher against
// regexp on the patterns of the schema files and edge inputs.
func TestPatternMatcherAgreesWithRegexp(t *testing.T) {
	patterns := []string{
		`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`, `^[a-z0-9][a-z0-9_-]{0,63}$`, `^[0-9a-f]{32}$`,
		`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`, `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,4}$`, `^a+$`, `^x[yz]*$`,
	}
	inputs := []string{"", "a", "A", "0", "-a", "a-", "a b", "a\n", "é", "aé", "0123456789abcdef0123456789abcdef",
		"0123456789abcdef0123456789abcdeF", "0123456789abcdef0123456789abcde", "coupon.claim.requested", "x", "xyzzy", "aaa",
		string(make([]byte, 128)), "u@x", "u{1}", "a:b.c_d-e"}
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'a'
	}
	for n := 60; n <= 200; n += 1 {
		inputs = append(inputs, string(long[:n]))
	}
	fastSeen := 0
	for _, p := range patterns {
		m, err := compilePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		if m.re == nil {
			fastSeen++
		}
		re := regexp.MustCompile(p)
		for _, in := range inputs {
			if got, want := m.Match([]byte(in)), re.MatchString(in); got != want {
				t.Errorf("pattern %s on %q: matcher %v, regexp %v", p, in, got, want)
			}
		}
	}
	if fastSeen < 5 {
		t.Fatalf("only %d patterns took the fast form", fastSeen)
	}
}
