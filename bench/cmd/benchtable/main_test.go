package main

import (
	"strings"
	"testing"

	"github.com/gigbus/gigbus/bench"
)

func TestParseAndTable(t *testing.T) {
	t.Parallel()
	out := `goos: linux
BenchmarkThroughput1/chan-2         	 4157436	        60 ns/op	       0 B/op	       0 allocs/op
BenchmarkThroughput1/chan-2         	 4157436	        50 ns/op	       0 B/op	       0 allocs/op
BenchmarkThroughput1/chan-2         	 4157436	        70 ns/op	       0 B/op	       0 allocs/op
BenchmarkThroughput1/watermill-2    	   62434	      4000 ns/op	    1941 B/op	      27 allocs/op
BenchmarkThroughput1/asaskevich-async-2 	  195367	      1200 ns/op	     140 B/op	       4 allocs/op
BenchmarkThroughput1/gigbus-2       	 1110133	       200 ns/op	      24 B/op	       1 allocs/op
BenchmarkThroughput10/gigbus-2      	  216817	      3443 ns/op	       344.3 ns/delivery	      38 B/op	       1 allocs/op
PASS
`
	r, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if s := r.stat(bench.Throughput1, bench.ImplChan); s.ns != 60 || s.n != 3 || s.allocs != 0 {
		t.Errorf("chan median = %+v, want 60 ns over 3 runs", s)
	}
	if s := r.stat(bench.Throughput10, bench.ImplGigbus); s.ns != 3443 || s.allocs != 1 {
		t.Errorf("gigbus 10 subs = %+v, want 3443 ns, 1 alloc (ns/delivery skipped)", s)
	}
	var b strings.Builder
	printTable(&b, r)
	for _, want := range []string{
		"| chan | 60.0 | 0 |",
		"| >= 10x watermill throughput | throughput, 1 sub | 200 ns | 4000 ns | 20.0x | 20.0x | met |",
		"| >= 3x asaskevich-async throughput | throughput, 1 sub | 200 ns | 1200 ns | 6.0x | 6.0x | met |",
		"| within 3x of chan, 1 sub | throughput, 1 sub | 200 ns | 60.0 ns | 3.33x slower | 4.00x slower | missed (1.11x over 3x) |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
