package sinks

import (
	"context"

	"github.com/promoflow/promoflow/schemas"
)

// Crowd trigger types (crowd.membership.recorded's trigger).
const (
	// CrowdManual is a crowd an operator uploads: its members accumulate in
	// the manual tables until removed.
	CrowdManual = schemas.CrowdManual
	// CrowdRoutine is a crowd recomputed every day: each compute day's
	// members are a complete new set, in that day's tables.
	CrowdRoutine = schemas.CrowdRoutine
)

// Crowd is what the crowd locator knows about one crowd.
type Crowd struct {
	CrowdID string `json:"crowd_id"`
	AppID   string `json:"app_id"`
	// Trigger is CrowdManual or CrowdRoutine.
	Trigger string `json:"trigger"`
	// Day is the compute day readers see (YYYYMMDD): for a routine crowd,
	// the last day whose computation was marked complete; "" for a manual
	// crowd.
	Day string `json:"day,omitempty"`
}

// CrowdReader reads crowds without knowing their table layout (the locator
// says where a crowd's members are). Members are returned in ascending
// user id order, so a caller pages with the last id of the previous page.
type CrowdReader interface {
	// Crowd returns the crowd's locator entry, or an error wrapping
	// ErrNotFound.
	Crowd(ctx context.Context, crowdID string) (Crowd, error)
	// Members returns up to limit member ids greater than after ("" for
	// the first page), ascending. An unknown crowd is an error wrapping
	// ErrNotFound; an exhausted crowd is an empty slice.
	Members(ctx context.Context, crowdID, after string, limit int) ([]string, error)
	// IsMember says whether userID is a member of the crowd. An unknown
	// crowd is an error wrapping ErrNotFound.
	IsMember(ctx context.Context, crowdID, userID string) (bool, error)
}
