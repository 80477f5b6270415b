package schemas

import "time"

// Crowd (audience) event types.
const (
	TypeCrowdMembershipRecorded = "crowd.membership.recorded"
	TypeCrowdComputed           = "crowd.computed"
)

// Crowd trigger types.
const (
	// CrowdManual is a crowd an operator uploads; its members accumulate
	// until removed.
	CrowdManual = "manual"
	// CrowdRoutine is a crowd recomputed every day: each compute day's
	// members are a complete new set.
	CrowdRoutine = "routine"
)

// Membership operations.
const (
	CrowdAdd    = "add"
	CrowdRemove = "remove"
)

// CrowdMembershipRecorded is one user's membership of a crowd
// (crowd.membership.recorded v1), keyed by user_id so that a crowd's rows
// spread over every partition. A routine crowd's membership names its
// compute day; a manual crowd's has none and may be a removal.
type CrowdMembershipRecorded struct {
	CrowdID string `json:"crowd_id"`
	UserID  string `json:"user_id"`
	// Trigger is CrowdManual or CrowdRoutine.
	Trigger string `json:"trigger"`
	// ComputeDay is the day (YYYYMMDD) a routine crowd was computed for.
	ComputeDay string `json:"compute_day,omitempty"`
	// Op is CrowdAdd (the default when absent) or CrowdRemove, which
	// takes the user out of a manual crowd.
	Op         string    `json:"op,omitempty"`
	RecordedAt time.Time `json:"recorded_at"`
}

func (CrowdMembershipRecorded) EventType() string      { return TypeCrowdMembershipRecorded }
func (CrowdMembershipRecorded) EventVersion() int      { return 1 }
func (m CrowdMembershipRecorded) PartitionKey() string { return m.UserID }

// CrowdComputed says a routine crowd's compute day is complete
// (crowd.computed v1): once the store holds its Members rows, readers
// switch to that day.
type CrowdComputed struct {
	CrowdID    string    `json:"crowd_id"`
	Trigger    string    `json:"trigger"`
	ComputeDay string    `json:"compute_day"`
	Members    int64     `json:"members"`
	ComputedAt time.Time `json:"computed_at"`
}

func (CrowdComputed) EventType() string      { return TypeCrowdComputed }
func (CrowdComputed) EventVersion() int      { return 1 }
func (c CrowdComputed) PartitionKey() string { return c.CrowdID }

// ValidComputeDay reports whether day is a real calendar day as YYYYMMDD.
func ValidComputeDay(day string) bool {
	if len(day) != 8 {
		return false
	}
	t, err := time.Parse("20060102", day)
	return err == nil && t.Format("20060102") == day
}

// checkCrowdDay requires a real compute_day exactly on routine crowds'
// events, and no removal of a routine crowd's member (a routine day is a
// complete set: a later day replaces it).
func checkCrowdDay(_ string, field func(string) string) error {
	day := field("compute_day")
	switch field("trigger") {
	case CrowdRoutine:
		if !ValidComputeDay(day) {
			return invalid(ReasonInvalidPayload, "a routine crowd needs compute_day as a real day YYYYMMDD, got %q", truncateString(day, 16))
		}
		if field("op") == CrowdRemove {
			return invalid(ReasonInvalidPayload, "a routine crowd's member cannot be removed: publish the next compute day instead")
		}
	case CrowdManual:
		if day != "" {
			return invalid(ReasonInvalidPayload, "compute_day %q is set on a manual crowd", truncateString(day, 16))
		}
	}
	return nil
}
