package flagenv

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	env := map[string]string{
		"WEFT_ETCD_ENDPOINTS": "http://env:2379",
		"WEFT_NODE_NAME":      "from-env",
		"WEFT_IP_MASQ":        "false",
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	endpoints := fs.String("etcd-endpoints", "http://127.0.0.1:2379", "")
	node := fs.String("node-name", "host", "")
	masq := fs.Bool("ip-masq", true, "")
	ttl := fs.Duration("lease-ttl", time.Hour, "")
	if err := Parse(fs, []string{"-node-name", "from-flag"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *endpoints != "http://env:2379" || *node != "from-flag" || *masq || *ttl != time.Hour {
		t.Errorf("got endpoints=%q node=%q masq=%v ttl=%v", *endpoints, *node, *masq, *ttl)
	}
}

func TestParseBadEnv(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("lease-ttl", time.Hour, "")
	err := Parse(fs, nil, func(k string) string {
		if k == "WEFT_LEASE_TTL" {
			return "soon"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "WEFT_LEASE_TTL") || !strings.Contains(err.Error(), "-lease-ttl") {
		t.Errorf("error = %v, want one naming WEFT_LEASE_TTL and -lease-ttl", err)
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "[]",
		" , ,":              "[]",
		"a":                 "[a]",
		" a , b,,c ":        "[a b c]",
		"10.0.0.1:7946,x:1": "[10.0.0.1:7946 x:1]",
	} {
		if got := fmt.Sprint(SplitList(in)); got != want {
			t.Errorf("SplitList(%q) = %s, want %s", in, got, want)
		}
	}
}
