package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// memberlistLogger adapts memberlist's *log.Logger output to slog. memberlist writes lines like
// "[WARN] memberlist: Refuting a suspect message (from: b)"; each becomes one debug record with
// the bracketed level kept as the memberlist_level attribute. memberlist is chatty and its warnings
// are mostly transient (a probe that missed under load); what an operator must see, the Member logs
// itself at the right level.
func memberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l}, "", 0)
}

type slogWriter struct{ log *slog.Logger }

// Write logs one memberlist line. log.Logger serializes calls and passes one line at a time.
func (w slogWriter) Write(p []byte) (int, error) {
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	msg := strings.TrimRight(string(p), "\n")
	level := ""
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if l, m, ok := strings.Cut(rest, "] "); ok {
			level, msg = l, m
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.log.Debug(msg, "memberlist_level", level)
	return len(p), nil
}
