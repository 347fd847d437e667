package gossip

import (
	"log/slog"
	"strings"
	"testing"
)

func TestMemberlistLogAdapter(t *testing.T) {
	var b strings.Builder
	l := memberlistLogger(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
	})))
	l.Printf("[WARN] memberlist: Refuting a suspect message (from: %s)", "node-2")
	l.Printf("no level here")
	want := `level=DEBUG msg="Refuting a suspect message (from: node-2)" memberlist_level=WARN
level=DEBUG msg="no level here" memberlist_level=""
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	var quiet strings.Builder
	memberlistLogger(slog.New(slog.NewTextHandler(&quiet, nil))).Printf("[DEBUG] memberlist: chatter")
	if quiet.Len() != 0 {
		t.Fatalf("logged below the handler's level: %q", quiet.String())
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
