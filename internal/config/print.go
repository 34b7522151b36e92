package config

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// The shapes below mirror the shops file, for printing it back with defaults filled in and
// secrets masked.
type (
	fileYAML struct {
		Shops []shopYAML `yaml:"shops"`
	}
	shopYAML struct {
		ID      string      `yaml:"id"`
		Atodene atodeneYAML `yaml:"atodene"`
		Fees    feesYAML    `yaml:"fees"`
		// ReauthorizeAfter is "88d", "2112h30m" or "0 # off".
		ReauthorizeAfter *yaml.Node `yaml:"reauthorize_after"`
	}
	atodeneYAML struct {
		BaseURL         string     `yaml:"base_url"`
		ShopCode        string     `yaml:"shop_code"`
		LinkID          string     `yaml:"link_id"`
		LinkPassword    *yaml.Node `yaml:"link_password"`
		InvoiceDelivery string     `yaml:"invoice_delivery"`
		OrderIDPrefix   string     `yaml:"order_id_prefix,omitempty"`
	}
	feesYAML struct {
		Mode  *yaml.Node   `yaml:"mode"`
		Table []*yaml.Node `yaml:"table,omitempty"`
	}
	rowYAML struct {
		Min int64 `yaml:"min"`
		Max int64 `yaml:"max"`
		Fee int64 `yaml:"fee"`
	}
)

// MarshalYAML returns the shops in the layout of the shops file, defaults filled in. Each
// password prints as "****", with a comment saying where it came from; the result is for
// reading, not for loading again.
func (s *Shops) MarshalYAML() (any, error) {
	out := fileYAML{Shops: make([]shopYAML, len(s.list))}
	for i, sh := range s.list {
		a := sh.Atodene
		pw := &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.SingleQuotedStyle, Value: masked}
		switch from := a.LinkPasswordFrom; {
		case strings.HasPrefix(from, "${"):
			pw.LineComment = "from " + from
		case from != "":
			pw.LineComment = "from file " + from
		}
		out.Shops[i] = shopYAML{
			ID: sh.ID,
			Atodene: atodeneYAML{
				BaseURL: a.BaseURL, ShopCode: a.ShopCode, LinkID: a.LinkID,
				LinkPassword: pw, InvoiceDelivery: string(a.InvoiceDelivery), OrderIDPrefix: a.OrderIDPrefix,
			},
			Fees: feesYAML{Mode: &yaml.Node{
				Kind: yaml.ScalarNode, Value: string(sh.Fees.Mode), LineComment: sh.Fees.Mode.Label(),
			}},
			ReauthorizeAfter: &yaml.Node{Kind: yaml.ScalarNode, Value: formatDays(sh.ReauthorizeAfter)},
		}
		if sh.ReauthorizeAfter == 0 {
			out.Shops[i].ReauthorizeAfter.LineComment = "off"
		}
		for _, r := range sh.Fees.Rows {
			var n yaml.Node
			if err := n.Encode(rowYAML{Min: r.Min, Max: r.Max, Fee: r.Fee}); err != nil {
				return nil, err
			}
			n.Style = yaml.FlowStyle // one row per line, as on the operators' screen
			out.Shops[i].Fees.Table = append(out.Shops[i].Fees.Table, &n)
		}
	}
	return out, nil
}
