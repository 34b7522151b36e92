package config

import (
	"fmt"
	"io"
	"log/slog"
)

// masked is what every printed form of a Secret shows.
const masked = "****"

// Secret holds a credential, such as an ATODENE link password. Every way of printing or
// encoding it (fmt verbs, String, YAML, JSON, text, slog) shows "****", so that logging a
// struct that holds one cannot leak it; only Reveal returns the value.
type Secret struct {
	value string
}

// NewSecret wraps value.
func NewSecret(value string) Secret { return Secret{value: value} }

// Reveal returns the secret's value, for the one place that must send it.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

// String returns "****".
func (s Secret) String() string { return masked }

// GoString returns "****", so that %#v of a struct holding a Secret is safe too.
func (s Secret) GoString() string { return masked }

// Format prints "****" for every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, masked) }

// MarshalYAML encodes "****".
func (s Secret) MarshalYAML() (any, error) { return masked, nil }

// MarshalJSON encodes "****".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + masked + `"`), nil }

// MarshalText encodes "****".
func (s Secret) MarshalText() ([]byte, error) { return []byte(masked), nil }

// LogValue logs "****".
func (s Secret) LogValue() slog.Value { return slog.StringValue(masked) }
