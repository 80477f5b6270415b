package sinks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInboxCursor(t *testing.T) {
	at := time.Date(2026, 11, 22, 12, 0, 0, 123_000_000, time.UTC)
	for _, c := range []InboxCursor{
		{},
		{PublishedAt: at, MessageID: "m1"},
		{PublishedAt: at, MessageID: "1.2.3"}, // dots after the first belong to the id
		{PublishedAt: time.UnixMilli(0).UTC(), MessageID: "a:b-c_d"},
	} {
		got, err := ParseInboxCursor(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseInboxCursor(%q) = %+v, %v; want %+v", c.String(), got, err, c)
		}
	}
	for _, bad := range []string{
		".m1", "x.m1", "12", "12.", "12. m", "-5.m1", "+5.m1", "1e3.m1", "253402300800000.m1",
		"9999999999999999.m1", "12.m1'--", "12." + strings.Repeat("m", 65), "12.\u00e9",
	} {
		if _, err := ParseInboxCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("ParseInboxCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

// FuzzParseInboxCursor: a cursor that parses encodes back to itself, so a
// client can never address a position the server would not hand out.
func FuzzParseInboxCursor(f *testing.F) {
	for _, s := range []string{"", "1732276800123.m1", "0.a", "12.1.2", "x", "253402300799999.z", "-1.m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseInboxCursor(s)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v does not wrap ErrBadCursor", err)
			}
			return
		}
		if !c.IsZero() && !ValidMessageID(c.MessageID) {
			t.Fatalf("%q parsed to invalid id %q", s, c.MessageID)
		}
		again, err := ParseInboxCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, c, c.String(), again, err)
		}
	})
}
