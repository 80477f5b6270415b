// Package topology reads topics.yaml and checks what each stage declares it
// reads and writes against it. It owns no Kafka connection; the topics
// command in cmd/promoflow applies the file with kadm.
package topology

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow"
	"github.com/promoflow/promoflow/schemas"
)

// Topic is one entry of topics.yaml.
type Topic struct {
	Name              string            `yaml:"name"`
	Description       string            `yaml:"description"`
	Partitions        int32             `yaml:"partitions"`
	ReplicationFactor int16             `yaml:"replication_factor"`
	CleanupPolicy     string            `yaml:"cleanup_policy"`
	Retention         string            `yaml:"retention"`
	Key               string            `yaml:"key"`
	Schemas           []string          `yaml:"schemas"`
	Configs           map[string]string `yaml:"configs"`
}

// RetentionMs returns retention.ms for the topic: -1 for "forever".
func (t Topic) RetentionMs() int64 {
	if t.Retention == "forever" {
		return -1
	}
	d, _ := time.ParseDuration(t.Retention) // checked by Validate
	return d.Milliseconds()
}

// KafkaConfigs returns every topic-level config the topic should have.
func (t Topic) KafkaConfigs() map[string]string {
	out := map[string]string{
		"cleanup.policy": t.CleanupPolicy,
		"retention.ms":   fmt.Sprint(t.RetentionMs()),
	}
	for k, v := range t.Configs {
		out[k] = v
	}
	return out
}

// Carries reports whether the topic carries events of the given type and version.
func (t Topic) Carries(tv schemas.TypeVersion) bool {
	for _, s := range t.Schemas {
		if s == tv.String() {
			return true
		}
	}
	return false
}

// File is the parsed topics.yaml.
type File struct {
	Topics []Topic `yaml:"topics"`
}

// Load parses and validates the topics.yaml embedded in the binary.
func Load() (*File, error) { return Parse(promoflow.TopicsYAML) }

// Parse parses and validates a topics file.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parsing topics file: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,200}$`)

// Validate checks every topic for a legal name, sizes, policy, retention and
// schemas that exist.
func (f *File) Validate() error {
	var errs []error
	seen := map[string]bool{}
	known := map[string]bool{}
	for _, tv := range schemas.Known() {
		known[tv.String()] = true
	}
	for i, t := range f.Topics {
		where := fmt.Sprintf("topic %d (%s)", i, t.Name)
		if !topicName.MatchString(t.Name) {
			errs = append(errs, fmt.Errorf("%s: illegal name", where))
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("%s: declared twice", where))
		}
		seen[t.Name] = true
		if t.Partitions < 1 {
			errs = append(errs, fmt.Errorf("%s: partitions must be at least 1", where))
		}
		if t.ReplicationFactor < 1 {
			errs = append(errs, fmt.Errorf("%s: replication_factor must be at least 1", where))
		}
		if t.CleanupPolicy != "delete" && t.CleanupPolicy != "compact" {
			errs = append(errs, fmt.Errorf("%s: cleanup_policy must be delete or compact", where))
		}
		if t.Retention != "forever" {
			if d, err := time.ParseDuration(t.Retention); err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: retention %q is not a positive duration or \"forever\"", where, t.Retention))
			}
		}
		if t.Key == "" {
			errs = append(errs, fmt.Errorf("%s: key must say what records are keyed by", where))
		}
		for _, s := range t.Schemas {
			if !known[s] {
				errs = append(errs, fmt.Errorf("%s: no schema %s in schemas/json", where, s))
			}
		}
	}
	return errors.Join(errs...)
}

// Topic returns the named topic.
func (f *File) Topic(name string) (Topic, bool) {
	for _, t := range f.Topics {
		if t.Name == name {
			return t, true
		}
	}
	return Topic{}, false
}

// TopicFor returns the single topic that carries events of tv, for producers
// that route by type.
func (f *File) TopicFor(tv schemas.TypeVersion) (Topic, error) {
	var found []Topic
	for _, t := range f.Topics {
		if t.Carries(tv) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Topic{}, fmt.Errorf("no topic in topics.yaml carries %s", tv)
	default:
		return Topic{}, fmt.Errorf("%d topics carry %s; name the topic", len(found), tv)
	}
}

// Node is what one stage (processor or sink) declares: the consumer group it
// joins, the topics it reads and the topics it writes, and for each topic it
// reads, which event types it understands.
type Node struct {
	Name   string
	Group  string
	Reads  []string
	Writes []string
	// Views are topics the stage reads whole in every instance, without a
	// group (compacted tables such as coupon.admin).
	Views []string
	// Handles lists the <type>.v<version> the stage decodes; every schema of
	// every topic it reads must be among them, or events would go unhandled.
	Handles []string
}

// Check verifies nodes against the file: every topic read or written exists,
// every schema a read topic carries is handled, and no two stages share a
// consumer group.
func (f *File) Check(nodes ...Node) error {
	var errs []error
	groups := map[string]string{}
	for _, n := range nodes {
		if n.Group != "" {
			if other, ok := groups[n.Group]; ok {
				errs = append(errs, fmt.Errorf("%s and %s both join group %s", other, n.Name, n.Group))
			}
			groups[n.Group] = n.Name
		}
		handles := map[string]bool{}
		for _, h := range n.Handles {
			handles[h] = true
		}
		for _, r := range append(append([]string(nil), n.Reads...), n.Views...) {
			t, ok := f.Topic(r)
			if !ok {
				errs = append(errs, fmt.Errorf("%s reads %s, which topics.yaml does not declare", n.Name, r))
				continue
			}
			for _, s := range t.Schemas {
				if !handles[s] {
					errs = append(errs, fmt.Errorf("%s reads %s but does not handle its schema %s", n.Name, r, s))
				}
			}
		}
		for _, w := range n.Writes {
			if _, ok := f.Topic(w); !ok {
				errs = append(errs, fmt.Errorf("%s writes %s, which topics.yaml does not declare", n.Name, w))
			}
		}
	}
	return errors.Join(errs...)
}

// Graph renders the data flow of nodes as text: one line per edge.
func (f *File) Graph(nodes ...Node) string {
	var lines []string
	for _, n := range nodes {
		for _, r := range n.Reads {
			lines = append(lines, fmt.Sprintf("%-22s ──▶ %-26s (group %s)", r, n.Name, n.Group))
		}
		for _, v := range n.Views {
			lines = append(lines, fmt.Sprintf("%-22s ──▶ %-26s (view: every instance reads it all)", v, n.Name))
		}
		for _, w := range n.Writes {
			lines = append(lines, fmt.Sprintf("%-22s ──▶ %s", n.Name, w))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}
