// Package gossiptest holds the gossip key fixtures that the gossip and peer view tests share.
package gossiptest

import (
	"bytes"
	"encoding/base64"
	"os"
	"strings"
	"testing"
)

// Keys are AES keys named by a letter, for readable test output: A, B and C of 32 bytes, D of 16.
var Keys = map[string][]byte{
	"A": bytes.Repeat([]byte{'A'}, 32),
	"B": bytes.Repeat([]byte{'B'}, 32),
	"C": bytes.Repeat([]byte{'C'}, 32),
	"D": bytes.Repeat([]byte{'D'}, 16),
}

// KeyLines renders the comma-separated named keys as the lines of a key file, primary first.
func KeyLines(names string) string {
	var b strings.Builder
	for _, n := range strings.Split(names, ",") {
		b.WriteString(base64.StdEncoding.EncodeToString(Keys[n]) + "\n")
	}
	return b.String()
}

// WriteFile replaces path with content and mode in one rename, as an operator's tool would.
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
