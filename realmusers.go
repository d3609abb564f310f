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
// gave each user name of each realm, by the load's context: every
// module of one load is provisioned with the same one, which ends with
// the load.
var realmUsers = struct {
	sync.Mutex
	loads map[context.Context]map[realmUser]account.ID
}{loads: make(map[context.Context]map[realmUser]account.ID)}

// realmUser is a user name of a realm.
type realmUser struct{ realm, name string }

// claimUsers records the handler's accounts for its config load, and
// refuses one whose name another handler of the realm gave another
// password hash.
func (h *Handler) claimUsers(ctx caddy.Context) error {
	realmUsers.Lock()
	defer realmUsers.Unlock()
	users, ok := realmUsers.loads[ctx.Context]
	if !ok {
		users = make(map[realmUser]account.ID)
		realmUsers.loads[ctx.Context] = users
		load := ctx.Context
		context.AfterFunc(load, func() {
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
