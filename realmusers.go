package miniapp

import (
	"context"
	"fmt"
	"sync"

	"github.com/caddy-miniapp/miniapp/internal/account"
	"github.com/caddyserver/caddy/v2"
)

// A user name names one person in a realm: an account's durable records
// (second factor, passkeys) hang on the realm and the name, so two
// handlers of one realm that gave one name different password hashes
// would let two people share one second factor. A config in which they
// do is refused.

// realmUsers are the accounts the handlers of each config being loaded
// gave each user name of each realm, by the done channel of the load's
// context: every module of one load is provisioned with that context or
// a value-carrying child of it (each HTTP server adds its own value),
// which share it, and it closes when the load ends.
var realmUsers = struct {
	sync.Mutex
	loads map[<-chan struct{}]map[realmUser]account.ID
}{loads: make(map[<-chan struct{}]map[realmUser]account.ID)}

// realmUser is a user name of a realm.
type realmUser struct{ realm, name string }

// claimUsers records the handler's accounts for its config load, and
// refuses one whose name another handler of the realm gave another
// password hash.
func (h *Handler) claimUsers(ctx caddy.Context) error {
	load := ctx.Done()
	if load == nil {
		// a context that never ends tells no load from another
		return nil
	}
	realmUsers.Lock()
	defer realmUsers.Unlock()
	users, ok := realmUsers.loads[load]
	if !ok {
		users = make(map[realmUser]account.ID)
		realmUsers.loads[load] = users
		context.AfterFunc(ctx.Context, func() {
			realmUsers.Lock()
			delete(realmUsers.loads, load)
			realmUsers.Unlock()
		})
	}
	for _, a := range h.Accounts {
		acct, ok := h.accounts.Lookup(a.Username)
		if !ok {
			continue
		}
		key := realmUser{h.Realm, acct.Name}
		if id, seen := users[key]; seen && id != acct.ID {
			return fmt.Errorf("user %q of realm %q has a different password hash in another site: a user name names one person in a realm (they would share one second factor and passkeys); give the sites realms of their own", acct.Name, h.Realm)
		}
		users[key] = acct.ID
	}
	return nil
}
