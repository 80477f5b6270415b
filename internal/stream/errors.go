package stream

import "errors"

// ErrFenced is returned by a Handler (wrapped or not) when its state store
// refused a write because a newer owner of the partition has written. The
// runtime stops processing that partition until the group assigns it again.
var ErrFenced = errors.New("partition ownership fenced by a newer owner")

// ErrNoTopics is returned by New when a stage reads no topic.
var ErrNoTopics = errors.New("stage reads no topic")
