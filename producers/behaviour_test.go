package producers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

func TestRecordBehaviour(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 15*time.Second)
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	order := schemas.BehaviourRecorded{UserID: "u1", Action: schemas.ActionOrder, Category: "phone", Brand: "acme", Model: "x1", SKU: "sku-1", Price: 129900, Quantity: 2}
	if err := p.RecordBehaviour(ctx, "order-1", at, order); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range 20 {
		wg.Add(1)
		p.RecordBehaviourAsync(context.Background(), fmt.Sprint("browse-", i), time.Time{},
			schemas.BehaviourRecorded{UserID: fmt.Sprint("u", i%4), Action: schemas.ActionBrowse, Category: "tv"}, func(err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// Refused before sending: what the processor would dead-letter.
	for _, bad := range []schemas.BehaviourRecorded{
		{UserID: "u1", Action: "like", Category: "tv"},
		{UserID: "u1", Action: schemas.ActionBrowse},
		{UserID: "u1", Action: schemas.ActionReview, Category: "tv", Rating: 6},
		{UserID: "u1", Action: schemas.ActionOrder, Category: "tv", Price: -1},
		{UserID: "bad user", Action: schemas.ActionBrowse, Category: "tv"},
	} {
		err := p.RecordBehaviour(ctx, "bad", at, bad)
		if schemas.ReasonOf(err) != schemas.ReasonInvalidPayload {
			t.Errorf("%+v: %v, want invalid_payload", bad, err)
		}
	}

	recs := consumeAll(t, addrs, "behaviour.events")
	if len(recs) != 21 {
		t.Fatalf("%d records on behaviour.events, want 21", len(recs))
	}
	partitions := map[string]int32{}
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		var b schemas.BehaviourRecorded
		if err := env.DecodePayload(&b); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != b.UserID || env.AppID != testApp || env.Type != schemas.TypeBehaviourEventRecorded {
			t.Errorf("record key %q app %s type %s for %+v", r.Key, env.AppID, env.Type, b)
		}
		if prev, ok := partitions[b.UserID]; ok && prev != r.Partition {
			t.Errorf("user %s on partitions %d and %d", b.UserID, prev, r.Partition)
		}
		partitions[b.UserID] = r.Partition
		if env.EventID == "order-1" && (b != order || !env.OccurredAt.Equal(at)) {
			t.Errorf("order-1 = %+v at %v", b, env.OccurredAt)
		}
	}
}
