package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyWeftdImportsDaemon: package daemon is weftd's wiring, and only weftd's main imports it;
// what weftd shares with its clients lives in leaf packages (internal/nodeapi, subnet, ...).
func TestOnlyWeftdImportsDaemon(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/weft-net/weft/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const daemon = "github.com/weft-net/weft/daemon"
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		seen++
		for _, imp := range strings.Fields(imports) {
			if imp == daemon && pkg != "github.com/weft-net/weft/cmd/weftd" {
				t.Errorf("%s imports %s", pkg, daemon)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("go list printed an implausible list:\n%s", out)
	}
}

// TestVersion: weftd -version prints the version, as weftctl version does.
func TestVersion(t *testing.T) {
	out, err := exec.Command("go", "run", "-ldflags", "-X github.com/weft-net/weft/internal/version.Version=v9.8.7", ".", "-version").CombinedOutput()
	if err != nil || string(out) != "weftd v9.8.7\n" {
		t.Fatalf("weftd -version = %q, %v; want \"weftd v9.8.7\\n\"", out, err)
	}
}
