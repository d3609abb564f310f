package store

import (
	"maps"
	"slices"
	"time"
)

// Bounds of one account's index: the newest listedSessions sessions are
// listed with their details; older ones still work and up to
// otherSessions of them are counted (with their ID, expiry and counter
// alone); beyond that they are left out of the index.
const (
	listedSessions = 50
	otherSessions  = 1000
)

// sessionIndex holds each account's sessions as the store's feed reports
// logins, logouts and sign-outs everywhere, kept in memory like the
// revocations so that no request reads the store. Its owner's lock
// guards it.
type sessionIndex struct {
	accounts map[AccountID]*accountSessions
	// owner finds a session's account by its ID, for a logout or an
	// ending by ID.
	owner map[[16]byte]AccountID
	// byHour holds the session IDs by the hour their session expires, so
	// expired sessions go without a scan of every account.
	byHour map[int64][][16]byte
}

// accountSessions are one account's sessions: the newest with their
// details, and the others by ID with their expiry and counter alone.
type accountSessions struct {
	listed []Entry
	others map[[16]byte]Entry
}

func newSessionIndex() *sessionIndex {
	return &sessionIndex{
		accounts: make(map[AccountID]*accountSessions),
		owner:    make(map[[16]byte]AccountID),
		byHour:   make(map[int64][][16]byte),
	}
}

// add records a login; a session already known is left as it is.
func (x *sessionIndex) add(e Entry) {
	if _, known := x.owner[e.ID]; known {
		return
	}
	a := x.accounts[e.Account]
	if a == nil {
		a = new(accountSessions)
		x.accounts[e.Account] = a
	}
	x.owner[e.ID] = e.Account
	hour := e.Expires.Unix() / 3600
	x.byHour[hour] = append(x.byHour[hour], e.ID)
	at, _ := slices.BinarySearchFunc(a.listed, e, NewerFirst)
	a.listed = slices.Insert(a.listed, at, e)
	if len(a.listed) > listedSessions {
		oldest := a.listed[listedSessions]
		a.listed = a.listed[:listedSessions]
		if a.others == nil {
			a.others = make(map[[16]byte]Entry)
		}
		if len(a.others) < otherSessions {
			oldest.Address, oldest.Device = "", ""
			a.others[oldest.ID] = oldest
		} else {
			delete(x.owner, oldest.ID)
		}
	}
}

// NewerFirst orders sessions by start, newest first, then by ID.
func NewerFirst(a, b Entry) int {
	if c := b.Started.Compare(a.Started); c != 0 {
		return c
	}
	return slices.Compare(a.ID[:], b.ID[:])
}

// find returns an indexed session.
func (x *sessionIndex) find(id [16]byte) (Entry, bool) {
	acct, known := x.owner[id]
	if !known {
		return Entry{}, false
	}
	a := x.accounts[acct]
	if e, other := a.others[id]; other {
		return e, true
	}
	if i := slices.IndexFunc(a.listed, func(e Entry) bool { return e.ID == id }); i >= 0 {
		return a.listed[i], true
	}
	return Entry{}, false
}

// remove drops a session that ended.
func (x *sessionIndex) remove(id [16]byte) {
	e, known := x.find(id)
	if !known {
		return
	}
	delete(x.owner, id)
	a := x.accounts[e.Account]
	delete(a.others, id)
	a.listed = slices.DeleteFunc(a.listed, func(e Entry) bool { return e.ID == id })
	if len(a.listed) == 0 && len(a.others) == 0 {
		delete(x.accounts, e.Account)
	}
}

// signedOut drops the account's sessions that began below counter.
func (x *sessionIndex) signedOut(acct AccountID, counter uint32) {
	a := x.accounts[acct]
	if a == nil {
		return
	}
	for _, e := range slices.Concat(a.listed, slices.Collect(maps.Values(a.others))) {
		if e.Counter < counter {
			x.remove(e.ID)
		}
	}
}

// keep drops the sessions of every generation but this one.
func (x *sessionIndex) keep(generation uint64) {
	for id := range x.owner {
		if e, ok := x.find(id); ok && e.Generation != generation {
			x.remove(id)
		}
	}
}

// expire drops the sessions whose hour of expiry has passed.
func (x *sessionIndex) expire(now time.Time) {
	current := now.Unix() / 3600
	for hour, ids := range x.byHour {
		if hour >= current {
			continue
		}
		for _, id := range ids {
			x.remove(id)
		}
		delete(x.byHour, hour)
	}
}

// list appends the account's live sessions with their details to dst,
// newest first, and returns how many others it has besides the session
// shown.
func (x *sessionIndex) list(dst []Entry, acct AccountID, shown [16]byte, now time.Time) ([]Entry, int) {
	a := x.accounts[acct]
	if a == nil {
		return dst, 0
	}
	listed := dst
	for _, e := range a.listed {
		if now.Before(e.Expires) {
			listed = append(listed, e)
		}
	}
	others := 0
	for _, e := range a.others {
		if now.Before(e.Expires) && e.ID != shown {
			others++
		}
	}
	return listed, others
}
