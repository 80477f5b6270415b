// Package gateway is the HTTP ingest gateway behind `promoflow gateway`:
// upstream apps that cannot speak Kafka POST event envelopes to it, signed
// with their own key, and it publishes them through the Go SDK (producers)
// to the topic topics.yaml names for each event's type.
//
// It owns the edge of the pipeline for those apps: authentication (an
// HMAC-SHA256 signature per request with [Sign] as the reference client,
// a timestamp window and a bounded replay cache per app), authorization (an
// app publishes only envelopes with its own app_id), limits (body size,
// events per batch, a token bucket per app) and the per-event answer
// (accepted, or rejected with the schemas.Reason). Validation is exactly the
// SDK's: the same embedded schemas, run by schemas.Decode before the
// producer's PublishRaw runs them again.
//
// It must not touch anything downstream of Kafka (processors, sinks,
// Redis) and keeps no state that outlives the process: deduplication of a
// replayed or retried event is the processors' job, by event_id. It never
// logs or returns a key or a signature.
package gateway
