package miniapp

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/caddy-miniapp/miniapp/internal/session"
	"github.com/caddy-miniapp/miniapp/store"
	"go.uber.org/zap"
)

// An account's durable records in the realm's store (its second factor,
// its passkeys) are sealed whole with the realm's keys under a purpose of
// their own, bound to their name: never in clear, and a record edited in
// the store does not open.

// errRecordUnreadable is a record that does not open: edited in the
// store, or sealed with a key no longer configured.
var errRecordUnreadable = errors.New("the record does not open (edited in the store, or sealed with a key no longer configured)")

// openRecord opens the sealed record named key into v; a record that
// does not open is errRecordUnreadable.
func (h *Handler) openRecord(key string, sealed []byte, v any) error {
	data, _, err := h.keys.OpenData(session.PurposeRecord, string(sealed), key)
	if err != nil || json.Unmarshal(data, v) != nil {
		return errRecordUnreadable
	}
	return nil
}

// maxRecordData bounds a record's JSON so that, sealed (base64 of the
// key ID, nonce, ciphertext and tag), it stays within store.MaxRecord.
const maxRecordData = store.MaxRecord*3/4 - 64

// sealRecord seals v as the record named key, with the first key.
func (h *Handler) sealRecord(key string, v any) []byte {
	data, _ := json.Marshal(v) // plain values: never fails
	return []byte(h.keys.SealData(session.PurposeRecord, data, key))
}

// swapRecord replaces the record named key with what next makes of its
// sealed value as this node holds it (nil: none; a nil result removes
// it), reading the store again and trying anew when another node changed
// it meanwhile; next's error ends it.
func (h *Handler) swapRecord(ctx context.Context, key string, next func(sealed []byte) ([]byte, error)) error {
	sealed := h.shared.Record(key)
	for range 3 {
		value, err := next(sealed)
		if err != nil {
			return err
		}
		ok, err := h.shared.SwapRecord(ctx, key, sealed, value)
		if err != nil {
			return storeFailed{err}
		}
		if ok {
			return nil
		}
		if sealed, err = h.shared.ReadRecord(ctx, key); err != nil {
			return storeFailed{err}
		}
	}
	return storeFailed{errors.New("the record kept changing")}
}

// resealRecords seals again with the first key the records this node
// holds that an older key sealed, so that the older key may go once
// every node has started with the new one first. A record no key of this
// handler opens (another site's of the realm, or an edited one) is left
// as it is.
func (h *Handler) resealRecords(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*store.Timeout)
	defer cancel()
	resealed := 0
	for _, key := range h.shared.RecordKeys() {
		sealed := h.shared.Record(key)
		data, current, err := h.keys.OpenData(session.PurposeRecord, string(sealed), key)
		if sealed == nil || err != nil || current {
			continue
		}
		value := []byte(h.keys.SealData(session.PurposeRecord, data, key))
		if ok, err := h.shared.SwapRecord(ctx, key, sealed, value); ok && err == nil {
			resealed++
		}
	}
	if resealed > 0 {
		h.logger.Info("records (second factors, passkeys) sealed again with the first secret key", zap.Int("records", resealed))
	}
}
