package bench

import (
	"strings"
	"testing"
)

func TestTableRender(t *testing.T) {
	t.Parallel()
	tb := Table{Title: "Throughput", Columns: []string{"run", "orders/s", "vs baseline", "note"}}
	tb.Add("baseline", num(5479.4), ratio(0), "bare")
	tb.Add("worker ×1", num(2221.2), ratio(0.405), "審査中")
	tb.Add("worker ×2", num(12.345), ratio(0.45), "")
	tb.Notes = []string{"target: ≥ 5,000 orders/s"}
	var b strings.Builder
	if err := tb.Render(&b); err != nil {
		t.Fatal(err)
	}
	want := `Throughput
run        orders/s  vs baseline  note
---------  --------  -----------  ------
baseline      5,479            -  bare
worker ×1     2,221        0.41×  審査中
worker ×2      12.3        0.45×
  target: ≥ 5,000 orders/s

`
	if got := b.String(); got != want {
		t.Errorf("Render:\n%s\nwant:\n%s", got, want)
	}
}

func TestTableWithoutHeader(t *testing.T) {
	t.Parallel()
	tb := Table{Columns: []string{"", ""}}
	tb.Add("CPU", "AMD EPYC, 2 cores")
	tb.Add("Go", "go1.26")
	var b strings.Builder
	_ = tb.Render(&b)
	if want := "CPU  AMD EPYC, 2 cores\nGo   go1.26\n\n"; b.String() != want {
		t.Errorf("Render = %q, want %q", b.String(), want)
	}
}

func TestIsNumber(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"1,234": true, "12.5": true, "-3": true, "0.82×": true, "95%": true, "12 MB": true, "3.1 ms": true, "500/s": true,
		"": false, "worker": false, "1,000/s (saturated)": false, "v2.15.2": false, "×": false,
	} {
		if got := isNumber(s); got != want {
			t.Errorf("isNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNum(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "0.00", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestBarChart(t *testing.T) {
	t.Parallel()
	got := BarChart("orders/s", []Bar{{"500/s", 500, "500"}, {"2,000/s", 1000, "1,000"}, {"0/s", 0, "0"}, {"tiny", 1, "1"}}, 10)
	want := "orders/s\n" +
		"  500/s │█████      500\n" +
		"2,000/s │██████████ 1,000\n" +
		"    0/s │           0\n" +
		"   tiny │█          1\n"
	if got != want {
		t.Errorf("BarChart:\n%s\nwant:\n%s", got, want)
	}
}

func TestMetricSum(t *testing.T) {
	t.Parallel()
	text := `# HELP atodene_worker_messages_total Messages handled.
# TYPE atodene_worker_messages_total counter
atodene_worker_messages_total{outcome="ok",type="order.created"} 7990
atodene_worker_messages_total{outcome="retry",type="order.created"} 3
atodene_worker_messages_total{outcome="retry",type="poll"} 2
atodene_worker_messages_total_extra{outcome="retry"} 100
atodene_worker_handler_seconds_sum{type="poll"} 1.5
atodene_worker_handler_seconds_count 4
`
	for _, tt := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"atodene_worker_messages_total", nil, 7995},
		{"atodene_worker_messages_total", []string{`outcome="retry"`}, 5},
		{"atodene_worker_messages_total", []string{`outcome="retry"`, `type="poll"`}, 2},
		{"atodene_worker_messages_total", []string{`outcome="dead"`}, 0},
		{"atodene_worker_handler_seconds_sum", nil, 1.5},
		{"atodene_worker_handler_seconds_count", nil, 4},
	} {
		if got := MetricSum(text, tt.metric, tt.labels...); got != tt.want {
			t.Errorf("MetricSum(%s, %v) = %v, want %v", tt.metric, tt.labels, got, tt.want)
		}
	}
}

func TestOutcomeOrder(t *testing.T) {
	t.Parallel()
	if got, ok := outcomeOrder("bench:T0000012:1a2b3c4d:3:credit.ok"); !ok || got != "T0000012" {
		t.Errorf("outcomeOrder = %q, %v", got, ok)
	}
	if _, ok := outcomeOrder("dlq:ORDERS:12"); ok {
		t.Error("a dead letter's ID read as an outcome's")
	}
}

func TestXMLElement(t *testing.T) {
	t.Parallel()
	doc := []byte("<response><result>OK</result><transactionInfo><transactionId>123</transactionId></transactionInfo></response>")
	if got := xmlElement(doc, "transactionId"); got != "123" {
		t.Errorf("transactionId = %q", got)
	}
	if got := xmlElement(doc, "missing"); got != "" {
		t.Errorf("missing = %q", got)
	}
}
