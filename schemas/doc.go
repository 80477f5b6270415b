// Package schemas owns the wire format of every Promoflow event: the
// versioned JSON envelope, the JSON Schema files (embedded from json/) that
// validate each event type, and the typed Go payloads.
//
// Producers validate with [Validate] before sending and processors decode
// with [Decode]; both run the same embedded schemas, so an event accepted by
// the SDK is accepted by the pipeline. Upstream apps in other languages read
// the same files (see docs/events.md). This package does no I/O and must not
// import any other Promoflow package.
package schemas
