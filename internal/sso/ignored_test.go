package sso

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestIgnored names each parameter that is no rule once a window, at
// most MaxIgnored names, counts the rest, and never logs a name that
// could corrupt the log.
func TestIgnored(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	logger, n, now := zap.New(core), new(Ignored), time.Unix(1e9, 0)
	n.Warn(logger, now, "groups")
	n.Warn(logger, now, "groups")
	n.Warn(logger, now, "bad\x1bname")
	for i := range MaxIgnored + 5 {
		n.Warn(logger, now, "flood"+strconv.Itoa(i))
	}
	named := logs.FilterMessageSnippet("is no rule").All()
	if len(named) != MaxIgnored || named[0].ContextMap()["parameter"] != "groups" || named[1].ContextMap()["parameter"] != "(a long or unprintable name)" {
		t.Fatalf("%d named: %v", len(named), named[:2])
	}
	n.Warn(logger, now.Add(IgnoredWindow), "groups")
	if logs.FilterField(zap.Int("not_named", 7)).Len() != 1 || logs.FilterField(zap.String("parameter", "groups")).Len() != 2 {
		t.Errorf("a new window: %v", logs.All()[logs.Len()-2:])
	}
	for _, e := range logs.All() {
		if strings.ContainsRune(e.Message, 0x1b) {
			t.Error("an escape reached the log")
		}
	}
}
