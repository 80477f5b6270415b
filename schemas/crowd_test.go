package schemas

import (
	"testing"
	"time"
)

func TestDecodeCrowdEvents(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	cases := []struct {
		name string
		p    Payload
		want Reason
	}{
		{"routine member", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdRoutine, ComputeDay: "20261122", RecordedAt: at}, ""},
		{"manual member", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdManual, RecordedAt: at}, ""},
		{"manual removal", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdManual, Op: CrowdRemove, RecordedAt: at}, ""},
		{"routine without a day", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdRoutine, RecordedAt: at}, ReasonInvalidPayload},
		{"routine on February 30", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdRoutine, ComputeDay: "20260230", RecordedAt: at}, ReasonInvalidPayload},
		{"routine removal", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdRoutine, ComputeDay: "20261122", Op: CrowdRemove, RecordedAt: at}, ReasonInvalidPayload},
		{"manual with a day", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdManual, ComputeDay: "20261122", RecordedAt: at}, ReasonInvalidPayload},
		{"unknown op", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: CrowdManual, Op: "drop", RecordedAt: at}, ReasonInvalidPayload},
		{"unknown trigger", CrowdMembershipRecorded{CrowdID: "c1", UserID: "u1", Trigger: "weekly", RecordedAt: at}, ReasonInvalidPayload},
		{"sql in crowd id", CrowdMembershipRecorded{CrowdID: "c1`; DROP TABLE x", UserID: "u1", Trigger: CrowdManual, RecordedAt: at}, ReasonInvalidPayload},
		{"computed", CrowdComputed{CrowdID: "c1", Trigger: CrowdRoutine, ComputeDay: "20261122", Members: 3, ComputedAt: at}, ""},
		{"computed manual", CrowdComputed{CrowdID: "c1", Trigger: CrowdManual, Members: 3, ComputedAt: at}, ReasonInvalidPayload},
		{"computed bad day", CrowdComputed{CrowdID: "c1", Trigger: CrowdRoutine, ComputeDay: "2026112x", Members: 3, ComputedAt: at}, ReasonInvalidPayload},
		{"computed negative", CrowdComputed{CrowdID: "c1", Trigger: CrowdRoutine, ComputeDay: "20261122", Members: -1, ComputedAt: at}, ReasonInvalidPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkDecodeReason(t, "shop", at, c.p, c.want) })
	}
}

// checkDecodeReason encodes p as app's event and checks that the compiled
// checks and the reference engine both refuse it with want ("" accepts).
func checkDecodeReason(t *testing.T, app string, at time.Time, p Payload, want Reason) {
	t.Helper()
	env, err := New("e-1", app, at, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, decode := range map[string]func([]byte) (*Envelope, error){
		"compiled": testDecoder().Decode, "reference": testDecoder().decodeReference,
	} {
		_, err := decode(b)
		if got := ReasonOf(err); got != want {
			t.Errorf("%s: reason %q (%v), want %q", name, got, err, want)
		}
	}
}
