package bench

import (
	"cmp"
	"context"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// scrape fetches a worker's /metrics in the Prometheus text format.
func scrape(ctx context.Context, addr string) (string, error) {
	body, err := childproc.Get(ctx, "http://"+addr+"/metrics")
	if err != nil {
		return "", err
	}
	defer body.Close()
	raw, err := io.ReadAll(body)
	return string(raw), err
}

// MetricSum adds up the samples of metric in a Prometheus text exposition whose labels include
// every name="value" pair of labels. Comments and other metrics are skipped.
func MetricSum(text, metric string, labels ...string) float64 {
	sum := 0.0
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if name != metric {
			continue
		}
		labelPart, value := "", rest
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labelPart, value = rest[1:end], rest[end+1:]
		}
		ok := true
		for _, l := range labels {
			if !hasLabel(labelPart, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(value)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// hasLabel reports whether a label list (a="1",b="2") holds the pair l (b="2").
func hasLabel(list, l string) bool {
	for list != "" {
		i := strings.Index(list, `",`)
		pair := list
		if i >= 0 {
			pair, list = list[:i+1], list[i+2:]
		} else {
			list = ""
		}
		if pair == l {
			return true
		}
	}
	return false
}

// sumMetric scrapes every worker of the stack and adds up metric.
func (s *benchStack) sumMetric(ctx context.Context, metric string, labels ...string) float64 {
	total := 0.0
	for _, w := range s.Workers {
		if text, err := scrape(ctx, w.HTTPAddr); err == nil {
			total += MetricSum(text, metric, labels...)
		}
	}
	return total
}

// fetchProfile stores url's profile (e.g. /debug/pprof/profile?seconds=10) in file.
func fetchProfile(ctx context.Context, url, file string, seconds int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	body, err := childproc.Get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// retries is how many messages the stack's workers handed back for a retry so far.
func (s *benchStack) retries(ctx context.Context) float64 {
	return s.sumMetric(ctx, "atodene_worker_messages_total", `outcome="retry"`) +
		s.sumMetric(ctx, "atodene_worker_messages_total", `outcome="retry-after"`)
}

// HistogramQuantile estimates quantile q (0 < q < 1) of a Prometheus histogram in a text
// exposition, over the series whose labels include every pair of labels, as Prometheus's
// histogram_quantile does: linear within the bucket that holds it. It returns the estimate (in the
// histogram's unit), the observations counted, and the bucket's upper bound (+Inf if beyond the
// last finite one, when the estimate is that bound).
func HistogramQuantile(text, metric string, q float64, labels ...string) (est float64, n float64, upper float64) {
	type bucket struct{ le, count float64 }
	counts := map[float64]float64{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, metric+"_bucket{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			continue
		}
		labelPart, value := rest[:end], strings.TrimSpace(rest[end+1:])
		match := true
		for _, l := range labels {
			match = match && hasLabel(labelPart, l)
		}
		i := strings.Index(labelPart, `le="`)
		if !match || i < 0 {
			continue
		}
		leText := labelPart[i+4:]
		leText = leText[:strings.IndexByte(leText, '"')]
		le, err1 := strconv.ParseFloat(leText, 64)
		c, err2 := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err1 == nil && err2 == nil {
			counts[le] += c
		}
	}
	bs := make([]bucket, 0, len(counts))
	for le, c := range counts {
		bs = append(bs, bucket{le, c})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return 0, 0, 0
	}
	n = bs[len(bs)-1].count
	rank := q * n
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower, n, b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below), n, b.le
		}
		lower, below = b.le, b.count
	}
	return lower, n, math.Inf(1)
}
