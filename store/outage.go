package store

import (
	"time"

	"go.uber.org/zap"
)

// outageLogEvery is how often an outage of the store is logged again
// while it lasts.
const outageLogEvery = time.Minute

// outageLog logs a store's outage as the loop meets it: the first failed
// sync at once, then once a minute with how many failed since, and the
// recovery, instead of an error line for each failed sync.
type outageLog struct {
	logger *zap.Logger
	// since is when the outage began; zero while the store answers
	since time.Time
	// logged is when the outage was last logged, and failures how many
	// syncs failed since then
	logged   time.Time
	failures int
	total    int
}

// failed records a failed sync at now.
func (o *outageLog) failed(err error, now time.Time) {
	o.failures++
	o.total++
	switch {
	case o.since.IsZero():
		o.since, o.logged, o.failures = now, now, 0
		o.logger.Error("syncing with the store failed; answering from memory and retrying", zap.Error(err))
	case now.Sub(o.logged) >= outageLogEvery:
		o.logger.Error("the store still fails; answering from memory and retrying", zap.Error(err),
			zap.Int("failed_syncs", o.failures), zap.Duration("down_for", now.Sub(o.since).Round(time.Second)))
		o.logged, o.failures = now, 0
	}
}

// ok records a sync that succeeded at now.
func (o *outageLog) ok(now time.Time) {
	if o.since.IsZero() {
		return
	}
	o.logger.Info("the store answers again", zap.Int("failed_syncs", o.total), zap.Duration("down_for", now.Sub(o.since).Round(time.Second)))
	*o = outageLog{logger: o.logger}
}
