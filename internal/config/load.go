package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/fees"
	"go.yaml.in/yaml/v3"
)

// LoadShops reads and validates the shops file at path. ${NAME} references are resolved with
// lookupEnv (os.LookupEnv in production); link_password_file paths are relative to the file's
// directory. Defaults are applied: link_id original00, invoice_delivery separate,
// reauthorize_after 88 days (DefaultReauthorizeAfter), and, for a shop without fees, mode keep
// with no rows.
//
// The error joins every problem found, each a *FieldError naming the file, the shop and the
// field, so that one run lists them all. It never contains a secret's value.
func LoadShops(path string, lookupEnv func(string) (string, bool), opts ...LoadOption) (*Shops, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // already names the path
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &FieldError{File: path, Err: err}
	}
	l := &loader{file: path, dir: filepath.Dir(path), lookupEnv: lookupEnv, minReauth: minReauthorizeAfter}
	for _, opt := range opts {
		opt(l)
	}
	top := newProblems(path, 0)
	list, probs := l.document(top, &doc)
	return newShops(path, list, probs, top)
}

// loader turns the YAML node tree into Shops. It walks the nodes itself, rather than decoding
// into structs, so that every problem, an unknown field included, names its shop and field
// path and line, and all of them are reported together.
type loader struct {
	file      string
	dir       string
	lookupEnv func(string) (string, bool)
	// minReauth is the shortest reauthorize_after accepted, 0 aside (MinReauthorizeAfter).
	minReauth time.Duration
}

// LoadOption is a knob of one LoadShops call.
type LoadOption func(*loader)

// MinReauthorizeAfter makes LoadShops accept a reauthorize_after as short as d (the worker's
// -min-reauthorize-after) instead of 1h; d <= 0 keeps 1h.
func MinReauthorizeAfter(d time.Duration) LoadOption {
	return func(l *loader) {
		if d > 0 {
			l.minReauth = d
		}
	}
}

// document decodes the whole file into shops, recording the problems of the file's shape in
// top and those of each shop in its own problems. Secrets are resolved here; the values are
// validated later, by newShops.
func (l *loader) document(top *problems, doc *yaml.Node) ([]Shop, []*problems) {
	if len(doc.Content) == 0 { // an empty file: newShops reports that no shops are listed
		return nil, nil
	}
	root := fields(top, "", doc.Content[0], "shops")
	seq := sequence(top, "shops", root["shops"])
	list := make([]Shop, len(seq))
	probs := make([]*problems, len(seq))
	for i, n := range seq {
		probs[i] = newProblems(l.file, i+1)
		probs[i].lines[""] = n.Line
		list[i] = l.shop(probs[i], n)
	}
	return list, probs
}

func (l *loader) shop(p *problems, n *yaml.Node) Shop {
	m := fields(p, "", n, "id", "atodene", "fees", "reauthorize_after")
	var sh Shop
	sh.ID = scalar(p, "id", m["id"])
	p.named(sh.ID)
	a := fields(p, "atodene", m["atodene"], "base_url", "shop_code", "link_id",
		"link_password", "link_password_file", "invoice_delivery", "order_id_prefix")
	sh.Atodene = Atodene{
		BaseURL:         scalar(p, "atodene.base_url", a["base_url"]),
		ShopCode:        scalar(p, "atodene.shop_code", a["shop_code"]),
		LinkID:          orDefault(scalar(p, "atodene.link_id", a["link_id"]), DefaultLinkID),
		InvoiceDelivery: InvoiceDelivery(orDefault(scalar(p, "atodene.invoice_delivery", a["invoice_delivery"]), string(InvoiceSeparate))),
		OrderIDPrefix:   scalar(p, "atodene.order_id_prefix", a["order_id_prefix"]),
	}
	sh.Atodene.LinkPassword, sh.Atodene.LinkPasswordFrom = l.password(p, a)
	sh.Fees = feeTable(p, m["fees"])
	sh.ReauthorizeAfter = reauthorizeAfter(p, m["reauthorize_after"], l.minReauth)
	return sh
}

// reauthorizeAfter decodes reauthorize_after: absent, null or empty means the default; a value
// other than 0 below least (minReauthorizeAfter unless the worker lowered it) is refused as a
// probable wrong unit. A negative value is kept for validateShop to refuse, as it does for shops
// built in code.
func reauthorizeAfter(p *problems, n *yaml.Node, least time.Duration) time.Duration {
	const field = "reauthorize_after"
	raw := scalar(p, field, n)
	if raw == "" {
		return DefaultReauthorizeAfter
	}
	d, err := parseDays(raw)
	switch {
	case err != nil:
		p.add(field, err)
		return 0
	case d > 0 && d < least:
		p.add(field, fmt.Errorf("%q: %w", raw, reauthorizeTooShort(least)))
	}
	return d
}

// feeTable decodes fees; absent fees mean mode keep with no rows.
func feeTable(p *problems, n *yaml.Node) fees.Table {
	if isNull(n) {
		return fees.Table{Mode: fees.ModeKeep}
	}
	f := fields(p, "fees", n, "mode", "table")
	raw := scalar(p, "fees.mode", f["mode"])
	if raw == "" && !p.broken["fees.mode"] && !p.broken["fees"] {
		p.addf("fees.mode", "required: keep, overwrite or add")
	}
	mode, err := fees.ParseMode(raw)
	if err != nil {
		mode = fees.Mode(raw) // reported by validateShop through fees.Table.Validate
	}
	t := fees.Table{Mode: mode}
	for i, rn := range sequence(p, "fees.table", f["table"]) {
		field := fmt.Sprintf("fees.table[%d]", i+1)
		r := fields(p, field, rn, "min", "max", "fee")
		t.Rows = append(t.Rows, fees.Row{
			Min: integer(p, field+".min", r["min"]),
			Max: integer(p, field+".max", r["max"]),
			Fee: integer(p, field+".fee", r["fee"]),
		})
	}
	return t
}

// password resolves link_password (a ${NAME} reference) or link_password_file, and returns
// the secret and where it came from. The messages never quote a link_password value, which may
// be the password itself.
func (l *loader) password(p *problems, a map[string]*yaml.Node) (Secret, string) {
	const field = "atodene.link_password"
	ref, file := a["link_password"], a["link_password_file"]
	switch {
	case !isNull(ref) && !isNull(file):
		p.addf(field, "give link_password or link_password_file, not both")
	case !isNull(ref):
		return l.fromEnv(p, field, ref)
	case !isNull(file):
		s, from := l.fromFile(p, "atodene.link_password_file", file)
		if s.IsZero() {
			p.broken[field] = true // the file's problem was reported; "required" would be noise
		}
		return s, from
	}
	return Secret{}, "" // validateShop reports it as required
}

func (l *loader) fromEnv(p *problems, field string, n *yaml.Node) (Secret, string) {
	if n.Kind != yaml.ScalarNode {
		p.addf(field, "want a ${ENV_VAR} reference, got %s", kindOf(n))
		return Secret{}, ""
	}
	name, ok := envReference(n.Value)
	switch {
	case n.Value == "":
		p.addf(field, "empty: want a ${ENV_VAR} reference")
		return Secret{}, ""
	case !ok:
		p.addf(field, "plain-text passwords are not allowed: write ${ENV_VAR} and set that variable, or use link_password_file")
		return Secret{}, ""
	}
	from := "${" + name + "}"
	v, set := l.lookupEnv(name)
	if !set {
		p.addf(field, "environment variable %s is not set", name)
		return Secret{}, from
	}
	return checkPassword(p, field, "environment variable "+name, v), from
}

// checkPassword returns the password a variable or a file holds, without the line ending a
// secret made from a file keeps (a Kubernetes secret of a file ending in a newline, exposed as a
// variable), and reports one that is then empty, only spaces, or holds a control character:
// ATODENE would refuse every call as account-refused, where `worker config check` can tell now.
// The error names where the password came from, never what it holds.
func checkPassword(p *problems, field, from, v string) Secret {
	v = strings.TrimRight(v, "\r\n")
	switch {
	case strings.TrimSpace(v) == "":
		p.addf(field, "%s is empty", from)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		p.addf(field, "%s holds a control character (a line break inside, a NUL): not a password", from)
	}
	return NewSecret(v)
}

func (l *loader) fromFile(p *problems, field string, n *yaml.Node) (Secret, string) {
	path := scalar(p, field, n)
	if path == "" {
		if !p.broken[field] { // not already reported as a bad node
			p.addf(field, "empty: want the path of a file holding the password")
		}
		return Secret{}, ""
	}
	full := path
	if !filepath.IsAbs(full) {
		full = filepath.Join(l.dir, path)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		p.add(field, err) // *fs.PathError names the file; its content is never quoted
		return Secret{}, path
	}
	return checkPassword(p, field, "file "+full, string(data)), path
}

// envReference returns NAME when s is exactly ${NAME}, NAME being [A-Za-z_][A-Za-z0-9_]*.
func envReference(s string) (string, bool) {
	name, ok := strings.CutPrefix(s, "${")
	name, ok2 := strings.CutSuffix(name, "}")
	if !ok || !ok2 || name == "" || ('0' <= name[0] && name[0] <= '9') {
		return "", false
	}
	for _, c := range name {
		if c != '_' && !('0' <= c && c <= '9') && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') {
			return "", false
		}
	}
	return name, true
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
