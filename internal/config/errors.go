package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem in the shops file: which file, which shop, which field, what is
// wrong. Loading reports every FieldError it finds, joined with errors.Join.
type FieldError struct {
	File  string // the shops file as it was named; empty for shops built in code
	Shop  string // the shop's id; empty when it has none, or for a problem outside any shop
	Index int    // the shop's 1-based position in the list; 0 for a problem outside any shop
	Field string // the field's path within the shop (or the file), e.g. "fees.table[2]"
	Line  int    // the line in the file; 0 when not known
	Err   error  // what is wrong
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	switch {
	case e.Shop != "":
		fmt.Fprintf(&b, "shop %q: ", e.Shop)
	case e.Index > 0:
		fmt.Fprintf(&b, "shop #%d: ", e.Index)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

// problems collects the FieldErrors of one shop, or of the file outside any shop. Decoding
// and validation add to the same problems, so that one load reports everything; validation
// stays quiet about a field whose decoding already failed (see check).
type problems struct {
	file   string
	shop   string
	index  int
	lines  map[string]int  // field path → line, when the shop came from a file
	broken map[string]bool // fields whose decoding failed
	errs   []error
}

func newProblems(file string, index int) *problems {
	return &problems{file: file, index: index, lines: map[string]int{}, broken: map[string]bool{}}
}

// add records a problem with field found while decoding. The message must never include a
// secret's value.
func (p *problems) add(field string, err error) {
	p.broken[field] = true
	p.errs = append(p.errs, &FieldError{
		File: p.file, Shop: p.shop, Index: p.index, Field: field, Line: p.line(field), Err: err,
	})
}

func (p *problems) addf(field, format string, args ...any) {
	p.add(field, fmt.Errorf(format, args...))
}

// check records a problem found while validating decoded values, unless decoding already
// reported field, a field inside it or around it: a value that could not be read is zero, and
// "required" or "min 0 overlaps" after "want a number" would only be noise.
func (p *problems) check(field string, err error) {
	for k := range p.broken {
		if k == "" || k == field || within(k, field) || within(field, k) {
			return
		}
	}
	p.errs = append(p.errs, &FieldError{
		File: p.file, Shop: p.shop, Index: p.index, Field: field, Line: p.line(field), Err: err,
	})
}

func (p *problems) checkf(field, format string, args ...any) {
	p.check(field, fmt.Errorf(format, args...))
}

// within reports whether field path inner lies inside outer, e.g. "fees.table[2].min" in
// "fees.table[2]" or "fees".
func within(inner, outer string) bool {
	return strings.HasPrefix(inner, outer+".") || strings.HasPrefix(inner, outer+"[")
}

// line returns the line of field or, when it is absent from the file, of the nearest
// enclosing field that is there.
func (p *problems) line(field string) int {
	for {
		if l, ok := p.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return p.lines[""]
		}
		field = field[:i]
	}
}

// named sets the shop's id on the problems already recorded, found before the id was read.
func (p *problems) named(id string) {
	p.shop = id
	for _, err := range p.errs {
		err.(*FieldError).Shop = id // problems holds nothing else
	}
}
