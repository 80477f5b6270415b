package producers

import (
	"context"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// RecordBehaviour publishes a behaviour.event.recorded event: what user
// b.UserID did (b.Action is schemas.ActionBrowse, ActionCart, ActionOrder
// or ActionReview), occurring at occurredAt (zero: now), to
// behaviour.events keyed by the user. The recommendation processor counts
// each eventID once, however often it is published, so retry with the same
// eventID. It waits for the acknowledgement; an event the schema refuses
// (an unknown action, an empty category, a negative price, a rating
// outside 1 to 5) is not sent.
func (p *Producer) RecordBehaviour(ctx context.Context, eventID string, occurredAt time.Time, b schemas.BehaviourRecorded) error {
	return p.Publish(ctx, eventID, occurredAt, b)
}

// RecordBehaviourAsync is RecordBehaviour without waiting, for the volume
// of browse events: fn is called with nil once Kafka acknowledges the
// event, or with the error (see PublishAsync for fn's rules and ctx's
// lifetime).
func (p *Producer) RecordBehaviourAsync(ctx context.Context, eventID string, occurredAt time.Time, b schemas.BehaviourRecorded, fn func(error)) {
	p.PublishAsync(ctx, eventID, occurredAt, b, fn)
}
