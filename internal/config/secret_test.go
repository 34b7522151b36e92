package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	const value = "hunter2-secret"
	s := NewSecret(value)
	holder := struct {
		Name     string
		Password Secret
	}{"rakuten-01", s}

	var printed []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10s"} {
		printed = append(printed, fmt.Sprintf(verb, s), fmt.Sprintf(verb, holder))
	}
	printed = append(printed, s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(&holder))
	if b, err := json.Marshal(holder); err != nil {
		t.Errorf("json.Marshal: %v", err)
	} else {
		printed = append(printed, string(b))
	}
	if b, err := yaml.Marshal(holder); err != nil {
		t.Errorf("yaml.Marshal: %v", err)
	} else {
		printed = append(printed, string(b))
	}
	if b, err := s.MarshalText(); err != nil {
		t.Errorf("MarshalText: %v", err)
	} else {
		printed = append(printed, string(b))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("shop", "password", s, "holder", holder)
	printed = append(printed, buf.String())

	for _, p := range printed {
		if strings.Contains(p, value) || strings.Contains(p, fmt.Sprintf("%x", value)) {
			t.Errorf("printed form leaks the secret: %s", p)
		}
		if !strings.Contains(p, "****") {
			t.Errorf("printed form does not show ****: %s", p)
		}
	}
	if s.Reveal() != value {
		t.Errorf("Reveal() = %q, want %q", s.Reveal(), value)
	}
	if s.IsZero() || !(Secret{}).IsZero() {
		t.Error("IsZero is wrong")
	}
}
