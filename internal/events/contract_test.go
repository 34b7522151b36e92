package events_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

const atodenePath = "github.com/atodene-worker/atodene-worker/internal/atodene"

// importsAtodene lists the files of package events (tests left out) that may import the ATODENE
// client, and what for. The outcome contract is not among them: its types are events' own, and
// the handlers map the client's types to them (docs/architecture.md#components).
var importsAtodene = map[string]string{
	// Order.Validate applies the client's field rules (atodene.CheckField), so that an order is
	// refused with the rules ATODENE applies.
	"inbound.go": "the field rules of Order.Validate",
}

// TestEventsDoesNotImportTheClient parses the imports of package events: only the files of
// importsAtodene import internal/atodene, and each of them still does (a use that ends is taken
// off the list, so that it does not come back unnoticed).
func TestEventsDoesNotImportTheClient(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	importing := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == atodenePath {
				importing[name] = true
			}
		}
	}
	for name := range importing {
		if _, ok := importsAtodene[name]; !ok {
			t.Errorf("%s imports %s: events defines its own types, and the handlers map the client's to them", name, atodenePath)
		}
	}
	for name, why := range importsAtodene {
		if !importing[name] {
			t.Errorf("%s no longer imports %s (it did for %s): take it off importsAtodene", name, atodenePath, why)
		}
	}
}

// TestOutcomeTypesAreEventsOwn walks the types of the outcome payloads: every named type they
// are made of is events' own or the standard library's, so no struct tag of another package
// shapes the JSON contract.
func TestOutcomeTypesAreEventsOwn(t *testing.T) {
	t.Parallel()
	eventsPath := reflect.TypeFor[events.Credit]().PkgPath()
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if pkg := typ.PkgPath(); pkg != "" && pkg != eventsPath && strings.Contains(pkg, ".") {
			t.Errorf("%s is %s, of package %s: the outcome contract uses events' own types", path, typ, pkg)
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(path+"[]", typ.Elem())
		case reflect.Map:
			walk(path+"{key}", typ.Key())
			walk(path+"{}", typ.Elem())
		case reflect.Struct:
			for f := range typ.Fields() {
				walk(path+"."+f.Name, f.Type)
			}
		}
	}
	for _, v := range []any{events.Credit{}, events.Shipment{}, events.Invoice{}} {
		typ := reflect.TypeOf(v)
		walk(typ.String(), typ)
	}
	for _, want := range []reflect.Type{reflect.TypeFor[events.ProviderError](), reflect.TypeFor[events.InvoicePrintData]()} {
		if !seen[want] {
			t.Errorf("%s is not part of the outcome payloads any more", want)
		}
	}
}
