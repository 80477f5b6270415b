package stream

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/schemas"
)

// NewRecord encodes p as the envelope of event id, published by app and
// occurring at at, into a record for topic: keyed by p's partition key,
// with the promoflow.type and promoflow.version headers the Go SDK sets.
// Processors use it for their results, whose event id is the result id.
func NewRecord(topic, id, app string, at time.Time, p schemas.Payload) (*kgo.Record, error) {
	env, err := schemas.New(id, app, at, p)
	if err != nil {
		return nil, err
	}
	v, err := env.Encode()
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(env.Key),
		Value: v,
		Headers: []kgo.RecordHeader{
			{Key: "promoflow.type", Value: []byte(env.Type)},
			{Key: "promoflow.version", Value: []byte(strconv.Itoa(env.Version))},
		},
	}, nil
}
