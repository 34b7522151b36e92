package events_test

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// section returns the lines of a Markdown page under the heading that starts with heading, up to
// the next heading of the same or a higher level.
func section(t *testing.T, page, heading string) string {
	t.Helper()
	level := strings.Index(heading, " ")
	var out []string
	in := false
	for _, l := range strings.Split(string(mustRead(t, page)), "\n") {
		if n := len(l) - len(strings.TrimLeft(l, "#")); n > 0 && strings.HasPrefix(l[n:], " ") {
			if in && n <= level {
				break
			}
			in = in || strings.HasPrefix(l, heading)
		}
		if in {
			out = append(out, l)
		}
	}
	if !in {
		t.Fatalf("%s has no heading %q", page, heading)
	}
	return strings.Join(out, "\n")
}

// TestCarrierTablesMatchTheCode: the carrier names of docs/events.md are events.Carriers, and the
// codes it lists, and those of docs/protocol.md#carrier-codes, are events.CarrierCodes.
func TestCarrierTablesMatchTheCode(t *testing.T) {
	t.Parallel()
	codes := slices.Sorted(maps.Keys(events.CarrierCodes))

	tracking := section(t, eventsDoc, "### `order.tracking_entered`")
	names := map[string]string{}
	for _, m := range regexp.MustCompile("\\| `([a-z_]+)` \\| ([0-9]{2}) \\|").FindAllStringSubmatch(tracking, -1) {
		names[m[1]] = m[2]
	}
	if !maps.Equal(names, events.Carriers) {
		t.Errorf("%s: the carrier table says %v, events.Carriers is %v", eventsDoc, names, events.Carriers)
	}
	listed := regexp.MustCompile("ATODENE's 17 codes .*?: `([0-9 ]+)`").FindStringSubmatch(tracking)
	if listed == nil || !slices.Equal(strings.Fields(listed[1]), codes) {
		t.Errorf("%s: the carrier rule lists codes %q, events.CarrierCodes are %v", eventsDoc, listed, codes)
	}

	const protocolDoc = "../../docs/protocol.md"
	var table []string
	for _, m := range regexp.MustCompile(`(?m)^\| ([0-9]{2}) \|`).FindAllStringSubmatch(section(t, protocolDoc, "## Carrier codes"), -1) {
		table = append(table, m[1])
	}
	if !slices.Equal(table, codes) {
		t.Errorf("%s: the carrier codes are %v, events.CarrierCodes are %v", protocolDoc, table, codes)
	}
}
