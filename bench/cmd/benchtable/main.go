// Command benchtable prints the in-process bus comparison as a markdown table:
// ns/event and allocs/event per implementation and scenario (medians over
// -count runs), then gigbus's ratios against the project's performance goal.
//
// Without -in it runs every case of package bench through testing.Benchmark:
//
//	go run ./cmd/benchtable -count 3 -benchtime 1s
//
// With -in it reads the output of `go test -bench` instead, so the table can
// be made from the exact run that is recorded:
//
//	go test -run XXX -bench . -benchmem -count 3 | tee results/run.txt
//	go run ./cmd/benchtable -in results/run.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gigbus/gigbus/bench"
)

// envelopeAllocs is what the caller's envelope costs per event: boxing the
// 24-byte Payload into Event.Data (an any) is one heap allocation. The goal
// is "0 allocations per event beyond the envelope".
const envelopeAllocs = 1

type sample struct{ ns, allocs float64 }

// results maps scenario -> implementation -> samples.
type results map[string]map[string][]sample

func (r results) add(sc, impl string, s sample) {
	if r[sc] == nil {
		r[sc] = map[string][]sample{}
	}
	r[sc][impl] = append(r[sc][impl], s)
}

func main() {
	testing.Init()
	count := flag.Int("count", 3, "runs per case; the table shows medians")
	benchtime := flag.String("benchtime", "1s", "per-run benchmark time (as go test -benchtime)")
	in := flag.String("in", "", "read `go test -bench` output from this file (- for stdin) instead of running")
	filter := flag.String("run", "", "only cases whose scenario/impl matches this regexp (running mode)")
	flag.Parse()

	var (
		r   results
		err error
	)
	if *in != "" {
		r, err = parseFile(*in)
	} else {
		r, err = runCases(*count, *benchtime, *filter)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, r)
}

func runCases(count int, benchtime, filter string) (results, error) {
	if err := flag.Set("test.benchtime", benchtime); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(filter)
	if err != nil {
		return nil, err
	}
	r := results{}
	for range count {
		for _, c := range bench.Cases() {
			if !re.MatchString(c.Scenario + "/" + c.Impl) {
				continue
			}
			res := testing.Benchmark(c.F)
			if res.N == 0 {
				return nil, fmt.Errorf("%s/%s failed", c.Scenario, c.Impl)
			}
			fmt.Fprintf(os.Stderr, "%s/%s\t%s\t%s\n", c.Scenario, c.Impl, res.String(), res.MemString())
			r.add(c.Scenario, c.Impl, sample{
				ns:     float64(res.T.Nanoseconds()) / float64(res.N),
				allocs: float64(res.AllocsPerOp()), // truncated, as go test prints it
			})
		}
	}
	return r, nil
}

var procSuffix = regexp.MustCompile(`-\d+$`)

func parseFile(name string) (results, error) {
	var f io.Reader = os.Stdin
	if name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		f = file
	}
	return parse(f)
}

// parse reads benchmark lines such as
// "BenchmarkThroughput1/gigbus-2  1000000  950.2 ns/op  24 B/op  1 allocs/op".
func parse(f io.Reader) (results, error) {
	r := results{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := procSuffix.ReplaceAllString(strings.TrimPrefix(fields[0], "Benchmark"), "")
		scenario, impl, ok := strings.Cut(name, "/")
		if !ok {
			continue
		}
		s := sample{ns: -1, allocs: -1}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", sc.Text(), err)
			}
			switch fields[i+1] {
			case "ns/op":
				s.ns = v
			case "allocs/op":
				s.allocs = v
			}
		}
		if s.ns < 0 {
			continue
		}
		r.add(scenario, impl, s)
	}
	if len(r) == 0 {
		return nil, fmt.Errorf("no benchmark lines found")
	}
	return r, sc.Err()
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

type stat struct {
	ns, allocs float64 // medians
	min, max   float64 // of ns
	spread     float64 // (max-min)/median of ns, in percent
	n          int
	ok         bool
}

func (r results) stat(sc, impl string) stat {
	ss := r[sc][impl]
	if len(ss) == 0 {
		return stat{}
	}
	ns := make([]float64, len(ss))
	allocs := make([]float64, len(ss))
	for i, s := range ss {
		ns[i], allocs[i] = s.ns, s.allocs
	}
	m := median(ns)
	return stat{
		ns:     m,
		allocs: median(allocs),
		min:    slices.Min(ns),
		max:    slices.Max(ns),
		spread: 100 * (slices.Max(ns) - slices.Min(ns)) / m,
		n:      len(ss),
		ok:     true,
	}
}

var scenarioTitle = map[string]string{
	bench.Throughput1:  "throughput, 1 sub",
	bench.Throughput10: "throughput, 10 subs",
	bench.Parallel:     "parallel publishers, 1 sub",
	bench.Latency:      "latency (round trip)",
}

func fmtNs(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func fmtAllocs(v float64) string {
	if v < 0 {
		return "?"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func printTable(w io.Writer, r results) {
	impls := []string{}
	for _, im := range bench.Impls() {
		impls = append(impls, im.Name)
	}
	// Implementations present only in the input (e.g. built without gigbus).
	for _, sc := range bench.Scenarios {
		for impl := range r[sc] {
			if !slices.Contains(impls, impl) {
				impls = append(impls, impl)
			}
		}
	}
	runs := 0
	for _, sc := range bench.Scenarios {
		for _, impl := range impls {
			runs = max(runs, r.stat(sc, impl).n)
		}
	}
	fmt.Fprintf(w, "Medians of %d runs; GOMAXPROCS=%d. ns/event = ns per publish, including handling every delivery (10 subs: 10 deliveries per event). Latency: ns per publish-and-wait round trip.\n\n", runs, runtime.GOMAXPROCS(0))

	fmt.Fprint(w, "| implementation |")
	for _, sc := range bench.Scenarios {
		unit := "ns/event"
		if sc == bench.Latency {
			unit = "ns/op"
		}
		fmt.Fprintf(w, " %s %s | allocs |", scenarioTitle[sc], unit)
	}
	fmt.Fprint(w, "\n|---|")
	for range bench.Scenarios {
		fmt.Fprint(w, "---:|---:|")
	}
	fmt.Fprintln(w)
	for _, impl := range impls {
		fmt.Fprintf(w, "| %s |", impl)
		for _, sc := range bench.Scenarios {
			s := r.stat(sc, impl)
			if !s.ok {
				fmt.Fprint(w, " – | – |")
				continue
			}
			fmt.Fprintf(w, " %s | %s |", fmtNs(s.ns), fmtAllocs(s.allocs))
		}
		fmt.Fprintln(w)
	}

	fmt.Fprint(w, "\nSpread of ns between runs, (max-min)/median:\n\n| implementation |")
	for _, sc := range bench.Scenarios {
		fmt.Fprintf(w, " %s |", scenarioTitle[sc])
	}
	fmt.Fprint(w, "\n|---|")
	for range bench.Scenarios {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, impl := range impls {
		fmt.Fprintf(w, "| %s |", impl)
		for _, sc := range bench.Scenarios {
			if s := r.stat(sc, impl); s.ok {
				fmt.Fprintf(w, " %.0f %% |", s.spread)
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}

	printGoals(w, r)
}

func printGoals(w io.Writer, r results) {
	g := bench.ImplGigbus
	if !r.stat(bench.Throughput1, g).ok {
		fmt.Fprintln(w, "\n(no gigbus results: goals not evaluated)")
		return
	}
	fmt.Fprintln(w, "\nGoals (gigbus with Event.ID set; the gigbus-genid row shows what ID generation adds):")
	fmt.Fprintln(w, "Ratios compare medians; \"fastest runs\" compares each side's fastest run (interference on a shared machine only adds time, so the minimum is the least disturbed estimate).")
	fmt.Fprintln(w, "\n| goal | scenario | gigbus | peer | ratio | fastest runs | verdict |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|")
	faster := func(peer string, want float64, scs ...string) {
		for _, sc := range scs {
			gs, ps := r.stat(sc, g), r.stat(sc, peer)
			if !gs.ok || !ps.ok {
				continue
			}
			ratio := ps.ns / gs.ns
			verdict := "met"
			if ratio < want {
				verdict = fmt.Sprintf("missed (%.2fx short of %gx)", want/ratio, want)
			}
			fmt.Fprintf(w, "| >= %gx %s throughput | %s | %s ns | %s ns | %.1fx | %.1fx | %s |\n",
				want, peer, scenarioTitle[sc], fmtNs(gs.ns), fmtNs(ps.ns), ratio, ps.min/gs.min, verdict)
		}
	}
	faster(bench.ImplWatermill, 10, bench.Throughput1, bench.Throughput10, bench.Parallel)
	faster(bench.ImplAsaskAsync, 3, bench.Throughput1, bench.Throughput10, bench.Parallel)
	for _, sc := range []string{bench.Throughput1, bench.Parallel, bench.Latency} {
		gs, cs := r.stat(sc, g), r.stat(sc, bench.ImplChan)
		if !gs.ok || !cs.ok {
			continue
		}
		ratio := gs.ns / cs.ns
		verdict := "met"
		switch {
		case sc != bench.Throughput1:
			verdict = "(for information)"
		case ratio > 3:
			verdict = fmt.Sprintf("missed (%.2fx over 3x)", ratio/3)
		}
		fmt.Fprintf(w, "| within 3x of chan, 1 sub | %s | %s ns | %s ns | %.2fx slower | %.2fx slower | %s |\n",
			scenarioTitle[sc], fmtNs(gs.ns), fmtNs(cs.ns), ratio, gs.min/cs.min, verdict)
	}
	for _, sc := range []string{bench.Throughput1, bench.Throughput10, bench.Parallel} {
		gs := r.stat(sc, g)
		if !gs.ok || gs.allocs < 0 {
			continue
		}
		extra := gs.allocs - envelopeAllocs
		verdict := "met"
		if extra > 0 {
			verdict = fmt.Sprintf("missed (%s extra)", fmtAllocs(extra))
		}
		fmt.Fprintf(w, "| 0 allocs/event beyond the envelope (%d: Data boxed) | %s | %s allocs | | %s beyond | | %s |\n",
			envelopeAllocs, scenarioTitle[sc], fmtAllocs(gs.allocs), fmtAllocs(extra), verdict)
	}
}
