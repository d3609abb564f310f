package store

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestOutageLog: an outage of the store that fails a sync every second
// for three minutes is logged four times (at once, then each minute with
// a count), and its end once.
func TestOutageLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	o := outageLog{logger: zap.New(core)}
	start := time.Unix(1_800_000_000, 0)
	o.ok(start)
	for i := range 181 {
		o.failed(errors.New("connection refused"), start.Add(time.Duration(i)*time.Second))
	}
	o.ok(start.Add(181 * time.Second))
	all := logs.All()
	if len(all) != 5 {
		t.Fatalf("%d lines for a three-minute outage, want 5: %v", len(all), all)
	}
	if all[0].Message != "syncing with the store failed; answering from memory and retrying" || all[1].ContextMap()["failed_syncs"] != int64(60) {
		t.Errorf("first lines: %v", all[:2])
	}
	if end := all[4]; end.Message != "the store answers again" || end.ContextMap()["failed_syncs"] != int64(181) || end.ContextMap()["down_for"] != 181*time.Second {
		t.Errorf("the recovery: %s %v", end.Message, end.ContextMap())
	}
	o.ok(start.Add(200 * time.Second))
	if logs.Len() != 5 {
		t.Error("a recovery logged twice")
	}
}
