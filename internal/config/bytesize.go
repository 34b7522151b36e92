package config

import (
	"fmt"

	"github.com/dustin/go-humanize"
)

// ByteSize is a size in bytes, written as a flag or variable with a unit: 4GiB, 500MB, 1048576.
type ByteSize int64

// minStreamBytes is the least -stream-bytes: room for a few maximum-size messages in each stream.
const minStreamBytes ByteSize = 64 << 20

// String writes the size in binary units (4.0 GiB).
func (b ByteSize) String() string { return humanize.IBytes(uint64(b)) }

// Set parses a size with an SI (MB) or binary (MiB) unit, or none for bytes.
func (b *ByteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n > 1<<62 {
		return fmt.Errorf("%q: want a size such as 4GiB or 500MB", s)
	}
	*b = ByteSize(n)
	return nil
}
