package schemas

import (
	"regexp"
	"regexp/syntax"
	"unicode/utf8"
)

// matcher tests a string against a schema pattern. Most patterns in the
// schema files are identifiers of the form ^C1…Ck R{m,n}$: a few single
// characters from ASCII classes, then one repeated ASCII class. Those are
// matched with byte tables; every other pattern uses regexp.
type matcher struct {
	re *regexp.Regexp
	// fast form, used when re is nil
	fixed      [][256]bool
	rep        [256]bool
	hasRep     bool
	min, max   int // repetitions of rep; max -1 = unbounded
	restricted bool
}

func compilePattern(p string) (*matcher, error) {
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	m := &matcher{re: re}
	tree, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return m, nil
	}
	if tree.Op != syntax.OpConcat || len(tree.Sub) < 3 ||
		tree.Sub[0].Op != syntax.OpBeginText || tree.Sub[len(tree.Sub)-1].Op != syntax.OpEndText {
		return m, nil
	}
	body := tree.Sub[1 : len(tree.Sub)-1]
	fast := &matcher{}
	for i, s := range body {
		last := i == len(body)-1
		switch {
		case s.Op == syntax.OpCharClass || s.Op == syntax.OpLiteral && len(s.Rune) == 1:
			t, ok := asciiTable(s)
			if !ok {
				return m, nil
			}
			fast.fixed = append(fast.fixed, t)
		case last && (s.Op == syntax.OpRepeat || s.Op == syntax.OpStar || s.Op == syntax.OpPlus) &&
			len(s.Sub) == 1 && (s.Sub[0].Op == syntax.OpCharClass || s.Sub[0].Op == syntax.OpLiteral && len(s.Sub[0].Rune) == 1):
			t, ok := asciiTable(s.Sub[0])
			if !ok {
				return m, nil
			}
			fast.rep, fast.hasRep = t, true
			switch s.Op {
			case syntax.OpStar:
				fast.min, fast.max = 0, -1
			case syntax.OpPlus:
				fast.min, fast.max = 1, -1
			default:
				fast.min, fast.max = s.Min, s.Max
			}
		default:
			return m, nil
		}
	}
	return fast, nil
}

// asciiTable returns the byte table of a class or literal whose runes are
// all ASCII; ok is false otherwise.
func asciiTable(s *syntax.Regexp) (t [256]bool, ok bool) {
	if s.Flags&syntax.FoldCase != 0 {
		return t, false
	}
	runes := s.Rune
	if s.Op == syntax.OpLiteral {
		runes = []rune{s.Rune[0], s.Rune[0]}
	}
	for i := 0; i+1 < len(runes); i += 2 {
		lo, hi := runes[i], runes[i+1]
		if hi >= utf8.RuneSelf {
			return t, false
		}
		for r := lo; r <= hi; r++ {
			t[r] = true
		}
	}
	return t, true
}

// Match reports whether b matches.
func (m *matcher) Match(b []byte) bool {
	if m.re != nil {
		return m.re.Match(b)
	}
	if len(b) < len(m.fixed) {
		return false
	}
	for i, t := range m.fixed {
		if !t[b[i]] {
			return false
		}
	}
	rest := b[len(m.fixed):]
	if !m.hasRep {
		return len(rest) == 0
	}
	// Only ASCII bytes are in the table, so counting bytes counts runes.
	if len(rest) < m.min || (m.max >= 0 && len(rest) > m.max) {
		return false
	}
	for _, c := range rest {
		if !m.rep[c] {
			return false
		}
	}
	return true
}

func (m *matcher) String() string {
	if m.re != nil {
		return m.re.String()
	}
	return "(compiled pattern)"
}
