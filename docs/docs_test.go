// Package docs_test keeps the documentation true to the code: the weftd flag table in
// configuration.md is generated from weftd's flag set, the field tables of the network config and
// the CNI plugin go through the parsers that read those fields, every relative link and anchor
// resolves, and architecture.md's package table covers the tree. (The metrics table is checked in
// package daemon, against weftd's own registry.)
package docs_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/weft-net/weft/cni"
	"github.com/weft-net/weft/daemon"
	"github.com/weft-net/weft/internal/doctest"
	"github.com/weft-net/weft/internal/flagenv"
	"github.com/weft-net/weft/subnet"
)

var update = flag.Bool("update", false, "rewrite the generated sections of the docs")

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

type weftdFlag struct {
	name, typ, def, usage string
}

// defaultSuffix is the " (default X)" the flag package appends to a usage; a "(default: ...)" in
// the usage itself has a colon and does not match.
var defaultSuffix = regexp.MustCompile(` \(default (.+)\)$`)

// weftdFlags reads weftd's flags from its -h output, which the flag package prints from the flag
// set itself.
func weftdFlags(t *testing.T) []weftdFlag {
	t.Helper()
	var out bytes.Buffer
	if _, err := daemon.ParseFlags([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("weftd -h: %v", err)
	}
	var flags []weftdFlag
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "  -"):
			name, typ, _ := strings.Cut(l[3:], " ")
			if typ == "" {
				typ = "bool"
			}
			flags = append(flags, weftdFlag{name: name, typ: typ})
		case strings.HasPrefix(l, "    \t") && len(flags) > 0:
			f := &flags[len(flags)-1]
			f.usage = strings.TrimSpace(f.usage + " " + l[5:])
		}
	}
	if len(flags) < 10 {
		t.Fatalf("found %d flags in weftd -h:\n%s", len(flags), out.String())
	}
	for i := range flags {
		f := &flags[i]
		m := defaultSuffix.FindStringSubmatchIndex(f.usage)
		if m == nil {
			continue
		}
		def := f.usage[m[2]:m[3]]
		if f.typ == "string" {
			// The flag package quotes string defaults; an unquoted "(default x)" is usage text.
			u, err := strconv.Unquote(def)
			if err != nil {
				continue
			}
			def = u
		}
		f.def, f.usage = def, f.usage[:m[0]]
	}
	return flags
}

func renderFlagTable(flags []weftdFlag) string {
	zero := map[string]string{"string": "", "int": "0", "bool": "false", "duration": "0s"}
	cell := strings.NewReplacer("<", "&lt;", ">", "&gt;", "|", `\|`)
	var b strings.Builder
	b.WriteString("| Flag | Environment variable | Default | Description |\n| --- | --- | --- | --- |\n")
	for _, f := range flags {
		def := f.def
		if def == "" {
			def = zero[f.typ]
		}
		if def == "" {
			def = "empty"
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `-%s` | `%s` | %s | %s |\n", f.name, flagenv.Name(f.name), def, cell.Replace(f.usage))
	}
	return b.String()
}

func TestWeftdFlagTable(t *testing.T) {
	const file = "configuration.md"
	doc := readFile(t, file)
	body, start, end := doctest.Section(t, doc, "weftd-flags")
	want := renderFlagTable(weftdFlags(t))
	if body == want {
		return
	}
	if *update {
		if err := os.WriteFile(file, []byte(doc[:start]+want+doc[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the weftd flag table is out of date; run go test ./docs -run TestWeftdFlagTable -update\n got:\n%s\nwant:\n%s", file, body, want)
}

// checkFields checks a documented field table against a parser: every field name must be one the
// parser knows (given as JSON null, it must not be an unknown field), and a default written as a
// single `literal` must be JSON that parses to the same config as leaving the field out.
func checkFields(t *testing.T, table string, base map[string]any, parse func([]byte) (any, error)) {
	t.Helper()
	build := func(field string, v any) []byte {
		doc := make(map[string]any)
		maps.Copy(doc, base)
		obj := doc
		parts := strings.Split(field, ".")
		for _, p := range parts[:len(parts)-1] {
			inner := make(map[string]any)
			obj[p] = inner
			obj = inner
		}
		obj[parts[len(parts)-1]] = v
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	baseJSON, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	want, err := parse(baseJSON)
	if err != nil {
		t.Fatalf("%s: %v", baseJSON, err)
	}
	seen := make(map[string]bool)
	for _, r := range doctest.Rows(t, table) {
		field, ok := strings.CutPrefix(r[0], "`")
		field, ok2 := strings.CutSuffix(field, "`")
		if !ok || !ok2 || len(r) != 3 {
			t.Errorf("row %q: want | `Field` | default | meaning |", r)
			continue
		}
		if seen[field] {
			t.Errorf("%s documented twice", field)
		}
		seen[field] = true
		in := build(field, nil)
		if _, err := parse(in); err != nil && strings.Contains(err.Error(), "unknown field") {
			t.Errorf("%s is documented but the parser does not know it: %v", field, err)
		}
		lit, isLit := strings.CutPrefix(r[1], "`")
		if lit, ok = strings.CutSuffix(lit, "`"); !isLit || !ok || strings.Contains(lit, "`") {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(lit), &v); err != nil {
			t.Errorf("%s: documented default %s is not a JSON value: %v", field, lit, err)
			continue
		}
		in = build(field, v)
		got, err := parse(in)
		switch {
		case err != nil:
			t.Errorf("%s: the documented default %s is refused: %v", field, lit, err)
		case !reflect.DeepEqual(got, want):
			t.Errorf("%s: the documented default %s is not the default:\n%s gives %+v\n%s gives %+v", field, lit, in, got, baseJSON, want)
		}
	}
}

func TestNetworkConfigTable(t *testing.T) {
	body, _, _ := doctest.Section(t, readFile(t, "configuration.md"), "network-config-fields")
	checkFields(t, body, map[string]any{"Network": "10.244.0.0/16"}, func(b []byte) (any, error) {
		c, err := subnet.ParseConfig(b)
		if err != nil {
			return nil, err
		}
		return *c, nil
	})
}

func TestCNIConfigTable(t *testing.T) {
	body, _, _ := doctest.Section(t, readFile(t, "configuration.md"), "cni-fields")
	checkFields(t, body, map[string]any{"cniVersion": "1.1.0", "name": "weft", "type": "weft"}, func(b []byte) (any, error) {
		c, err := cni.ParseConfig(b)
		if err != nil {
			return nil, err
		}
		return *c, nil
	})
}

var link = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// anchors returns the GitHub anchors of a Markdown file's headings.
func anchors(doc string) map[string]bool {
	out := make(map[string]bool)
	fenced := false
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

func TestLinks(t *testing.T) {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	adrs, err := filepath.Glob("adr/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, adrs...) {
		doc := readFile(t, f)
		fenced := false
		for n, l := range strings.Split(doc, "\n") {
			if strings.HasPrefix(l, "```") {
				fenced = !fenced
			}
			if fenced {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				path := f
				if file != "" {
					path = filepath.Join(filepath.Dir(f), file)
					if _, err := os.Stat(path); err != nil {
						t.Errorf("%s:%d: link to %s: %v", f, n+1, target, err)
						continue
					}
				}
				if anchor != "" && strings.HasSuffix(path, ".md") && !anchors(readFile(t, path))[anchor] {
					t.Errorf("%s:%d: link to %s: %s has no heading with anchor #%s", f, n+1, target, path, anchor)
				}
			}
		}
	}
}

// TestArchitecturePackages: architecture.md's package table names every package of the tree (a
// row may name several, with a glob such as `internal/*test`, or a subtree with "and below"), and
// every package it names exists.
func TestArchitecturePackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/weft-net/weft/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, dir := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(root, dir)
		if !strings.HasPrefix(rel, "cmd/") && rel != "docs" && rel != "etc" {
			pkgs = append(pkgs, filepath.ToSlash(rel))
		}
	}
	doc := readFile(t, "architecture.md")
	table := doc[strings.Index(doc, "| Package | Job |"):]
	table = table[:strings.Index(table, "\n\n")]
	var patterns []string
	for _, row := range strings.Split(table, "\n")[2:] {
		cell := strings.Split(row, "|")[1]
		below := strings.Contains(cell, "and below")
		for _, name := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
			p := name[1]
			if below {
				p += "/..."
			}
			patterns = append(patterns, p)
		}
	}
	matched := map[string]bool{}
	for _, pkg := range pkgs {
		found := false
		for _, p := range patterns {
			sub, isTree := strings.CutSuffix(p, "/...")
			ok, _ := filepath.Match(p, pkg)
			if ok || (isTree && (pkg == sub || strings.HasPrefix(pkg, sub+"/"))) {
				found, matched[p] = true, true
			}
		}
		if !found {
			t.Errorf("package %s is missing from architecture.md's package table", pkg)
		}
	}
	for _, p := range patterns {
		if !matched[p] {
			t.Errorf("architecture.md's package table names %s, which matches no package", p)
		}
	}
}
