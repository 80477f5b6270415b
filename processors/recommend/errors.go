package recommend

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidRules is wrapped by every error about the content of a rules
// file (a *RulesError).
var ErrInvalidRules = errors.New("invalid recommendation rules")

// Problem is one thing wrong in a rules file.
type Problem struct {
	// Line is the line of the offending value, or of the section a missing
	// value belongs to (0 when unknown).
	Line int
	// Field is the value's path, e.g. filters[1].multiply ("" when the
	// problem is the file's as a whole).
	Field string
	Msg   string
}

func (p Problem) String() string {
	s := ""
	if p.Line > 0 {
		s = fmt.Sprintf("line %d: ", p.Line)
	}
	if p.Field != "" {
		s += p.Field + ": "
	}
	return s + p.Msg
}

// RulesError lists every problem found in a rules file.
type RulesError struct {
	File     string
	Problems []Problem
}

func (e *RulesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid recommendation rules in %s:", e.File)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: ", e.File, p.Line)
			p.Line = 0
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns ErrInvalidRules.
func (e *RulesError) Unwrap() error { return ErrInvalidRules }
