// Package gossiptest holds the gossip key fixtures that the gossip and peer view tests share.
package gossiptest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
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

// NodeKey is a fixed Ed25519 node key for the named node, the same in every test.
func NodeKey(node string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("weft test node key " + node))
	return ed25519.NewKeyFromSeed(seed[:])
}

// NodePub is NodeKey's public half, as the node's lease carries it.
func NodePub(node string) ed25519.PublicKey { return NodeKey(node).Public().(ed25519.PublicKey) }
