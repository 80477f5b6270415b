package notify

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"
)

// Template is a notification's content. Title, Body and Link are Go
// text/templates over {{.UserID}}, {{.CampaignID}} and {{.CrowdID}}.
type Template struct {
	Title string `yaml:"title" json:"title"`
	Body  string `yaml:"body" json:"body"`
	Link  string `yaml:"link" json:"link"`
}

// templateName is what a template may be called (the events' pattern).
var templateName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Templates are the compiled templates by name.
type Templates struct {
	byName map[string]*compiled
}

type compiled struct{ title, body, link *template.Template }

// CompileTemplates checks and compiles defs.
func CompileTemplates(defs map[string]Template) (*Templates, error) {
	t := &Templates{byName: make(map[string]*compiled, len(defs))}
	for name, d := range defs {
		if !templateName.MatchString(name) {
			return nil, fmt.Errorf("notify template %q: a name is 1-64 letters, digits, '.', '_' or '-'", name)
		}
		if strings.TrimSpace(d.Title) == "" && strings.TrimSpace(d.Body) == "" {
			return nil, fmt.Errorf("notify template %q: title and body are both empty", name)
		}
		var c compiled
		for _, p := range []struct {
			dst  **template.Template
			part string
			src  string
		}{{&c.title, "title", d.Title}, {&c.body, "body", d.Body}, {&c.link, "link", d.Link}} {
			tt, err := template.New(name + "." + p.part).Option("missingkey=error").Parse(p.src)
			if err != nil {
				return nil, fmt.Errorf("notify template %q %s: %w", name, p.part, err)
			}
			// A render of made-up values finds fields that do not exist.
			if err := tt.Execute(&strings.Builder{}, renderData{"u1", "c1", "crowd"}); err != nil {
				return nil, fmt.Errorf("notify template %q %s: %w", name, p.part, err)
			}
			*p.dst = tt
		}
		t.byName[name] = &c
	}
	return t, nil
}

// Has reports whether name is a template.
func (t *Templates) Has(name string) bool { _, ok := t.byName[name]; return ok }

// Names lists the templates, sorted.
func (t *Templates) Names() []string {
	out := make([]string, 0, len(t.byName))
	for n := range t.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

type renderData struct{ UserID, CampaignID, CrowdID string }

// render fills m's Title, Body and Link from template name.
func (t *Templates) render(name string, m *Message, crowd string) error {
	c, ok := t.byName[name]
	if !ok {
		return fmt.Errorf("unknown template %q", name)
	}
	d := renderData{m.UserID, m.CampaignID, crowd}
	var b strings.Builder
	for _, p := range []struct {
		t   *template.Template
		dst *string
	}{{c.title, &m.Title}, {c.body, &m.Body}, {c.link, &m.Link}} {
		b.Reset()
		if err := p.t.Execute(&b, d); err != nil {
			return err
		}
		*p.dst = b.String()
	}
	return nil
}
