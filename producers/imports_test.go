package producers_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsStayOnTheProducingSide enforces the package doc: the producing
// side must not depend on the stages downstream of Kafka.
func TestImportsStayOnTheProducingSide(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/promoflow/promoflow/"
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, banned := range []string{"processors", "sinks", "cmd"} {
				if path == module+banned || strings.HasPrefix(path, module+banned+"/") {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
