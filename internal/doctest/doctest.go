// Package doctest reads the generated and checked sections of weft's Markdown docs for the tests
// that keep them true to the code.
package doctest

import (
	"strings"
	"testing"
)

// Section returns the lines strictly between the line starting with "<!-- BEGIN name" and the line
// "<!-- END name -->", and the byte offsets of that body in doc.
func Section(t *testing.T, doc, name string) (body string, start, end int) {
	t.Helper()
	begin := strings.Index(doc, "<!-- BEGIN "+name)
	if begin < 0 {
		t.Fatalf("no <!-- BEGIN %s marker", name)
	}
	start = begin + strings.IndexByte(doc[begin:], '\n') + 1
	n := strings.Index(doc[start:], "<!-- END "+name+" -->")
	if n < 0 {
		t.Fatalf("no <!-- END %s --> marker after its BEGIN", name)
	}
	return doc[start : start+n], start, start + n
}

// Rows returns the cells of a Markdown table's body rows (header and separator left out).
func Rows(t *testing.T, table string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) < 3 {
		t.Fatalf("table has no rows:\n%s", table)
	}
	var out [][]string
	for _, l := range lines[2:] {
		if !strings.HasPrefix(l, "| ") || !strings.HasSuffix(l, " |") {
			t.Fatalf("not a table row: %q", l)
		}
		out = append(out, strings.Split(l[2:len(l)-2], " | "))
	}
	return out
}
