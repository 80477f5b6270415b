package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed json/*.schema.json
var files embed.FS

// FS returns the embedded schema files, for docs and for `promoflow schemas`.
func FS() fs.FS {
	sub, _ := fs.Sub(files, "json")
	return sub
}

const envelopeFile = "envelope.v1.schema.json"

// TypeVersion names one payload schema.
type TypeVersion struct {
	Type    string
	Version int
}

func (tv TypeVersion) String() string { return fmt.Sprintf("%s.v%d", tv.Type, tv.Version) }

type registry struct {
	envelope *jsonschema.Schema
	payloads map[TypeVersion]*jsonschema.Schema
	// fastEnvelope and fastPayloads are the same schemas compiled into
	// the checks of fastcheck.go, used on the hot path.
	fastEnvelope *objRule
	fastPayloads map[TypeVersion]*objRule
	// keyFields names, per schema, the payload field that must equal the
	// envelope key (the schema's "x-promoflow-key" annotation).
	keyFields map[TypeVersion]string
}

var (
	regOnce sync.Once
	reg     *registry
	regErr  error
)

var payloadFile = regexp.MustCompile(`^(.+)\.v([0-9]+)\.schema\.json$`)

func load() (*registry, error) {
	regOnce.Do(func() { reg, regErr = compile() })
	return reg, regErr
}

func compile() (*registry, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	names, err := fs.Glob(files, "json/*.schema.json")
	if err != nil {
		return nil, err
	}
	keys := map[string]string{}
	fast := map[string]*rule{}
	for _, name := range names {
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parsing schema %s: %w", name, err)
		}
		if m, ok := doc.(map[string]any); ok {
			if k, ok := m["x-promoflow-key"].(string); ok {
				keys[path.Base(name)] = k
			}
		}
		root := "payload"
		if path.Base(name) == envelopeFile {
			root = "envelope"
		}
		fr, err := compileRule(root, doc)
		if err != nil {
			return nil, fmt.Errorf("compiling checks for %s: %w", name, err)
		}
		if fr.kind != kindObject {
			return nil, fmt.Errorf("schema %s must describe an object", name)
		}
		fast[path.Base(name)] = fr
		if err := c.AddResource(path.Base(name), doc); err != nil {
			return nil, fmt.Errorf("adding schema %s: %w", name, err)
		}
	}
	r := &registry{payloads: map[TypeVersion]*jsonschema.Schema{}, keyFields: map[TypeVersion]string{}, fastPayloads: map[TypeVersion]*objRule{}}
	for _, name := range names {
		base := path.Base(name)
		sch, err := c.Compile(base)
		if err != nil {
			return nil, fmt.Errorf("compiling schema %s: %w", base, err)
		}
		if base == envelopeFile {
			r.envelope = sch
			r.fastEnvelope = fast[base].obj
			continue
		}
		m := payloadFile.FindStringSubmatch(base)
		if m == nil {
			return nil, fmt.Errorf("schema file %s is not named <type>.v<version>.schema.json", base)
		}
		v, _ := strconv.Atoi(m[2])
		tv := TypeVersion{m[1], v}
		r.payloads[tv] = sch
		r.fastPayloads[tv] = fast[base].obj
		r.keyFields[tv] = keys[base]
	}
	if r.envelope == nil {
		return nil, fmt.Errorf("missing %s", envelopeFile)
	}
	return r, nil
}

// Known lists every (type, version) with an embedded schema, sorted.
func Known() []TypeVersion {
	r, err := load()
	if err != nil {
		panic(err) // the embedded files are compiled in tests; a failure here is a build defect
	}
	out := make([]TypeVersion, 0, len(r.payloads))
	for tv := range r.payloads {
		out = append(out, tv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// HasType reports whether any version of typ has a schema.
func HasType(typ string) bool {
	for _, tv := range Known() {
		if tv.Type == typ {
			return true
		}
	}
	return false
}

// firstLine shortens a jsonschema validation error to its most useful line.
func firstLine(err error) string {
	s := err.Error()
	lines := strings.Split(s, "\n")
	// jsonschema prints a header line followed by indented causes; the
	// causes name the offending field, so prefer them.
	var parts []string
	for _, l := range lines[1:] {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "-"))
		if l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return strings.TrimSpace(lines[0])
	}
	out := strings.Join(parts, "; ")
	if len(out) > 300 {
		out = out[:300] + "…"
	}
	return out
}
