package main

import (
	"errors"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

func TestStationMessageFlags(t *testing.T) {
	now := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	m, err := stationMessage(true, "", "", "t", "b", "/x", "", "72h", now)
	if err != nil || m.Audience != schemas.AudienceAll || m.UserID != "" || !m.ExpiresAt.Equal(now.Add(72*time.Hour)) || len(m.MessageID) != len("m-20261111T120000-")+8 {
		t.Fatalf("broadcast = %+v, %v", m, err)
	}
	m, err = stationMessage(false, "u1", "id1", "t", "", "", "2026-11-12T08:00:00+08:00", "2026-11-13T00:00:00Z", now)
	if err != nil || m.Audience != schemas.AudienceUser || m.UserID != "u1" || m.MessageID != "id1" ||
		!m.PublishedAt.Equal(time.Date(2026, 11, 12, 0, 0, 0, 0, time.UTC)) || m.PartitionKey() != "u1" {
		t.Fatalf("direct = %+v, %v", m, err)
	}
	for name, f := range map[string]func() error{
		"neither --all nor --user": func() error { _, err := stationMessage(false, "", "", "t", "", "", "", "", now); return err },
		"both":                     func() error { _, err := stationMessage(true, "u", "", "t", "", "", "", "", now); return err },
		"no title":                 func() error { _, err := stationMessage(true, "", "", "", "", "", "", "", now); return err },
		"bad --at":                 func() error { _, err := stationMessage(true, "", "", "t", "", "", "tomorrow", "", now); return err },
		"bad --expires":            func() error { _, err := stationMessage(true, "", "", "t", "", "", "", "soon", now); return err },
		"expires before it shows":  func() error { _, err := stationMessage(true, "", "", "t", "", "", "", "-1h", now); return err },
	} {
		var ue usageError
		if err := f(); !errors.As(err, &ue) {
			t.Errorf("%s: %v, want a usage error", name, err)
		}
	}
}
