package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"
)

// The helpers below read one node each, record its line under its field path, and report a
// problem (and return the zero value) when the node has the wrong shape. A missing or null
// node is not a problem here: required fields are checked on the decoded values.

// fields returns the values of mapping n by key. Keys outside known are errors, so a typo is
// reported instead of silently ignored; so are keys given twice.
func fields(p *problems, field string, n *yaml.Node, known ...string) map[string]*yaml.Node {
	n = deref(n)
	out := map[string]*yaml.Node{}
	if isNull(n) {
		return out
	}
	keepLine(p, field, n)
	if n.Kind != yaml.MappingNode {
		p.addf(field, "want a mapping with %s, got %s", listOf(known), kindOf(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		sub := join(field, k.Value)
		p.lines[sub] = k.Line
		switch {
		case !slices.Contains(known, k.Value):
			p.addf(sub, "unknown field (want one of %s)", listOf(known))
		case out[k.Value] != nil:
			p.addf(sub, "given twice")
		default:
			out[k.Value] = v
		}
	}
	return out
}

// sequence returns the items of sequence n.
func sequence(p *problems, field string, n *yaml.Node) []*yaml.Node {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	keepLine(p, field, n)
	if n.Kind != yaml.SequenceNode {
		p.addf(field, "want a list, got %s", kindOf(n))
		return nil
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = deref(c)
		p.lines[fmt.Sprintf("%s[%d]", field, i+1)] = c.Line
	}
	return items
}

// scalar returns the text of scalar n, whatever its YAML type: a shop code of digits is text.
func scalar(p *problems, field string, n *yaml.Node) string {
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.addf(field, "want a single value, got %s", kindOf(n))
		return ""
	}
	return n.Value
}

// integer returns the value of integer scalar n; a missing value is an error, as every number
// in the file is required.
func integer(p *problems, field string, n *yaml.Node) int64 {
	if isNull(n) {
		p.check(field, errors.New("required")) // quiet when the row itself was unreadable
		return 0
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		p.addf(field, "want a whole number of yen, got %s", describe(n))
		return 0
	}
	if !decimal.MatchString(n.Value) {
		// YAML reads 0330 as octal (216), 0x14a as hexadecimal: an amount copied from a
		// zero-padded screen would silently be another one.
		p.addf(field, "want a whole number of yen in decimal digits without leading zeros, got %s (YAML would read it as %d)", describe(n), v)
		return 0
	}
	return v
}

// decimal is an integer written in decimal digits, without leading zeros or a sign other than -.
var decimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// keepLine records n's line for field unless the line of field's key is known already: a
// message about a missing field points at the key of the mapping that lacks it.
func keepLine(p *problems, field string, n *yaml.Node) {
	if _, ok := p.lines[field]; !ok {
		p.lines[field] = n.Line
	}
}

// deref follows an alias (*name) to its anchor, so that shops may share a fees block.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

// describe quotes a scalar (fine for numbers: describe is never used on secrets) or names
// the node's kind.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q", n.Value)
	}
	return kindOf(n)
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func listOf(keys []string) string {
	s := ""
	for i, k := range keys {
		switch {
		case i == 0:
		case i == len(keys)-1:
			s += " or "
		default:
			s += ", "
		}
		s += k
	}
	return s
}
