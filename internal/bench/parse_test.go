package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/weft-net/weft/subnet"
)

func TestParseIperf(t *testing.T) {
	tests := []struct {
		name, file, inline string
		want               string
	}{
		{name: "receiver rate", file: "testdata/iperf-ok.json", want: "9.6523450127e+09"},
		{name: "server refused", file: "testdata/iperf-refused.json", want: "iperf3: unable to connect to server: Connection refused"},
		{name: "no end", inline: `{"end":{}}`, want: "iperf3: end.sum_received has no data"},
		{name: "not JSON", inline: "iperf3: error - unable to connect", want: "iperf3: output is not iperf3 JSON: invalid character 'i' looking for beginning of value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.inline)
			if tc.file != "" {
				var err error
				if data, err = os.ReadFile(tc.file); err != nil {
					t.Fatal(err)
				}
			}
			bps, err := parseIperf(data)
			got := fmt.Sprint(bps)
			if err != nil {
				if !errors.Is(err, ErrIperf) {
					t.Errorf("error %v does not wrap ErrIperf", err)
				}
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	stat := func(comm string) string {
		return "4242 (" + comm + ") S 1 4242 4242 0 -1 4194560 6140 0 0 0 24 21 9 12 20 0 9 0 1234 1297924096 7424 18446744073709551615"
	}
	tests := []struct {
		name, stat, want string
	}{
		{"weftd", stat("weftd"), "45 21"},
		{"spaces and parens in the name", stat("a) b (c"), "45 21"},
		{"truncated", "4242 (weftd) S 1 2 3", "proc: stat has 4 fields after the command name, want at least 15"},
		{"no name", "4242 weftd S", "proc: stat has no command name"},
		{"negative", "4242 (weftd) S 1 4242 4242 0 -1 4194560 6140 0 0 0 -24 21 9 12 20", `proc: stat field 14 "-24": not a CPU time`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			own, children, err := parseStatCPU([]byte(tc.stat))
			got := fmt.Sprint(own, children)
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	status := "Name:\tweftd\nVmRSS:\t   30200 kB\nRssAnon:\t   11208 kB\nThreads:\t9\nBad:\tx kB\n"
	if got := fmt.Sprint(parseStatus([]byte(status))); got != "map[RssAnon:11208 VmRSS:30200]" {
		t.Errorf("parseStatus = %s", got)
	}
}

func TestGoMetrics(t *testing.T) {
	body := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 56
go_memstats_heap_inuse_bytes 8.912896e+06
go_memstats_stack_inuse_bytes 1.179648e+06
go_gc_duration_seconds{quantile="0"} 2.5e-05
process_resident_memory_bytes 3.0924800e+07
weft_peers{source="etcd"} 102
`
	got := fmt.Sprint(goMetrics([]byte(body)))
	want := "map[go_goroutines:56 go_memstats_heap_inuse_mib:8.5 go_memstats_stack_inuse_mib:1.13 process_resident_memory_mib:29.49]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestSynthetic checks that synthetic peers are valid, distinct leases that never take a real
// node's subnet, and that the pod network runs out with a clear error.
func TestSynthetic(t *testing.T) {
	used := map[netip.Prefix]bool{netip.MustParsePrefix("10.244.0.64/26"): true, netip.MustParsePrefix("10.244.255.192/26"): true}
	s := &synthetic{used: used, next: netip.MustParseAddr("10.244.0.0")}
	subnets, ips, macs := map[netip.Prefix]bool{}, map[netip.Addr]bool{}, map[string]bool{}
	underlay := netip.MustParsePrefix("198.18.0.0/24")
	for i := range 1000 {
		sn, err := s.nextSubnet()
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		attrs := syntheticAttrs(i)
		raw, err := attrs.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := subnet.ParseLeaseAttrs(raw)
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		switch {
		case used[sn] || subnets[sn]:
			t.Fatalf("peer %d: subnet %s taken", i, sn)
		case ips[back.PublicIP] || underlay.Contains(back.PublicIP):
			t.Fatalf("peer %d: public IP %s reused or on the lab's underlay", i, back.PublicIP)
		case macs[back.VtepMAC.String()]:
			t.Fatalf("peer %d: MAC %s reused", i, back.VtepMAC)
		case back.GossipAddr.IsValid():
			t.Fatalf("peer %d: has a gossip address %s", i, back.GossipAddr)
		}
		subnets[sn], ips[back.PublicIP], macs[back.VtepMAC.String()] = true, true, true
	}
	s.n = 1000
	for range 22 {
		if _, err := s.nextSubnet(); err != nil {
			t.Fatalf("the pod network should still hold 22 free /26: %v", err)
		}
	}
	_, err := s.nextSubnet()
	if want := "no free /26 left in 10.244.0.0/16 for synthetic peer 1001"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
