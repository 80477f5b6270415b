// Package promoflow holds the files of the repository root that the binary
// embeds. The code lives in producers/, processors/, sinks/, schemas/,
// internal/ and cmd/promoflow.
package promoflow

import _ "embed"

// TopicsYAML is topics.yaml, the declaration of every topic.
//
//go:embed topics.yaml
var TopicsYAML []byte
