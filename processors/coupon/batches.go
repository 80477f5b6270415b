package coupon

import (
	"fmt"
	"sync"

	"github.com/promoflow/promoflow/schemas"
)

// Batches is the in-process cache of batch definitions, fed by a
// stream.View of the coupon admin topic. The highest revision of a batch
// wins; older or equal revisions arriving later are ignored.
type Batches struct {
	mu sync.RWMutex
	m  map[string]*schemas.BatchDefined
}

// NewBatches returns an empty cache.
func NewBatches() *Batches { return &Batches{m: map[string]*schemas.BatchDefined{}} }

// Apply takes one admin event. It is the View's apply function.
func (b *Batches) Apply(env *schemas.Envelope) error {
	if env.Type != schemas.TypeCouponBatchDefined {
		return fmt.Errorf("applying %s to coupon batches: %w", env.Type, schemas.ErrInvalid)
	}
	var def schemas.BatchDefined
	if err := env.DecodePayload(&def); err != nil {
		return err
	}
	if err := CheckBatch(&def); err != nil {
		return err
	}
	b.Put(&def)
	return nil
}

// CheckBatch applies the rules of a batch definition that its schema cannot
// express. A definition that breaks one is never cached.
func CheckBatch(def *schemas.BatchDefined) error {
	if !def.ValidUntil.After(def.ValidFrom) {
		return fmt.Errorf("batch %s revision %d: valid_until must be after valid_from: %w", def.BatchID, def.Revision, schemas.ErrInvalid)
	}
	return nil
}

// Put stores def unless a newer or equal revision is cached. It reports
// whether def was stored.
func (b *Batches) Put(def *schemas.BatchDefined) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.m[def.BatchID]; ok && cur.Revision >= def.Revision {
		return false
	}
	b.m[def.BatchID] = def
	return true
}

// Get returns the batch or nil. The result must not be modified.
func (b *Batches) Get(id string) *schemas.BatchDefined {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.m[id]
}

// Len returns the number of batches cached.
func (b *Batches) Len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.m)
}
