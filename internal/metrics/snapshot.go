package metrics

import (
	"fmt"
	"io"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Snapshot is the metric families of one gathering or scrape, by name, for
// tests and tools that read values.
type Snapshot map[string]*dto.MetricFamily

// Snapshot gathers the registry.
func (m *Metrics) Snapshot() (Snapshot, error) {
	fams, err := m.reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	s := make(Snapshot, len(fams))
	for _, f := range fams {
		s[f.GetName()] = f
	}
	return s, nil
}

// ParseText reads a scrape in the Prometheus text format.
func ParseText(r io.Reader) (Snapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return Snapshot(fams), nil
}

// Names returns the metric family names, sorted.
func (s Snapshot) Names() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Value sums the values of the series of counter or gauge name whose labels
// include the given name/value pairs; for a histogram it sums the sample
// counts. A missing metric is 0.
func (s Snapshot) Value(name string, labels ...string) float64 {
	var v float64
	s.each(name, labels, func(m *dto.Metric) {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
	})
	return v
}

// Sum sums the sample sums of histogram name's matching series.
func (s Snapshot) Sum(name string, labels ...string) float64 {
	var v float64
	s.each(name, labels, func(m *dto.Metric) {
		if m.Histogram != nil {
			v += m.Histogram.GetSampleSum()
		}
	})
	return v
}

// Series returns the label sets of name's series that include the pairs.
func (s Snapshot) Series(name string, labels ...string) []map[string]string {
	var out []map[string]string
	s.each(name, labels, func(m *dto.Metric) {
		ls := map[string]string{}
		for _, l := range m.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		out = append(out, ls)
	})
	return out
}

func (s Snapshot) each(name string, labels []string, fn func(*dto.Metric)) {
	f, ok := s[name]
	if !ok {
		return
	}
	if len(labels)%2 != 0 {
		panic("metrics: labels must be name/value pairs")
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
					break
				}
			}
			if !found {
				continue next
			}
		}
		fn(m)
	}
}
