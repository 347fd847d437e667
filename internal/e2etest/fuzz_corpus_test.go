package e2etest

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFuzzCorpora is scenario 10: every parser of outside input has a fuzz target with a checked-in
// seed corpus (testdata/fuzz/FuzzXxx/, files in the `go test fuzz v1` format), which `go test` runs
// as regular tests; `make test` fuzzes each target briefly and `make fuzz` longer. Any other fuzz
// target in the module needs at least seeds, checked in or added with f.Add.
func TestFuzzCorpora(t *testing.T) {
	const root = "../.."
	// The parsers of what weft reads from outside, by package and fuzz target.
	parsers := map[string]string{
		"network config (etcd, cached in the state dir)": "subnet FuzzParseConfig",
		"lease value (etcd)":                             "subnet FuzzParseLeaseAttrs",
		"lease set: key names and values (etcd)":         "subnet/etcd FuzzLeaseSet",
		"subnet.env (weftd to the CNI plugin)":           "subnet FuzzParseEnv",
		"local lease state (state dir)":                  "subnet/etcd FuzzReadState",
		"gossip meta (memberlist)":                       "gossip FuzzParseMeta",
		"CNI stdin (the runtime)":                        "cni FuzzParseConfig",
		"VTEP MAC file (state dir)":                      "vxlan FuzzParseMACFile",
		"kernel release (uname)":                         "vxlan FuzzParseKernelRelease",
		"saved lease set (state dir)":                    "daemon FuzzParseLeaseSet",
		"gossip key file":                                "gossip FuzzParseKeys",
		"network config, read by weftd (etcd)":           "subnet FuzzParseConfigLenient",
		"lease identity, read by weftctl (etcd)":         "subnet FuzzReadLeaseIdentity",
	}
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	required := map[string]bool{}
	for _, target := range parsers {
		required[target] = true
	}
	var targets []string
	seeded := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg, _ := filepath.Rel(root, filepath.Dir(path))
		for _, m := range decl.FindAllSubmatchIndex(src, -1) {
			target := pkg + " " + string(src[m[2]:m[3]])
			targets = append(targets, target)
			body, _, _ := bytes.Cut(src[m[1]:], []byte("\n}\n"))
			seeded[target] = bytes.Contains(body, []byte("f.Add("))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for what, target := range parsers {
		if !slices.Contains(targets, target) {
			t.Errorf("%s: no fuzz target %s", what, target)
		}
	}
	for _, target := range targets {
		pkg, name, _ := strings.Cut(target, " ")
		dir := filepath.Join(root, pkg, "testdata", "fuzz", name)
		entries, err := os.ReadDir(dir)
		switch {
		case (err != nil || len(entries) == 0) && required[target]:
			t.Errorf("%s: no checked-in corpus in %s (%v)", target, dir, err)
			continue
		case (err != nil || len(entries) == 0) && !seeded[target]:
			t.Errorf("%s: neither a checked-in corpus nor f.Add seeds", target)
			continue
		case err != nil || len(entries) == 0:
			t.Logf("%s: f.Add seeds only", target)
			continue
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
			if string(first) != "go test fuzz v1" {
				t.Errorf("%s: %s is not a `go test fuzz v1` file", target, e.Name())
			}
		}
		t.Logf("%s: %d corpus files", target, len(entries))
	}
}
