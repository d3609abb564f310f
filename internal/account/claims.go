package account

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"sync"
)

// A user name names one person in a realm: an account's durable records
// (second factor, passkeys) hang on the realm and the name, so two
// handlers of one realm that gave one name different password hashes
// would let two people share one second factor. A config in which they
// do is refused.

// claims are the accounts the handlers of each config being loaded gave
// each user name of each realm, by the done channel of the load's
// context: every module of one load is provisioned with that context or
// a value-carrying child of it (each HTTP server adds its own value),
// which share it, and it closes when the load ends.
var claims = struct {
	sync.Mutex
	loads map[<-chan struct{}]map[realmUser]ID
}{loads: make(map[<-chan struct{}]map[realmUser]ID)}

// realmUser is a user name of a realm.
type realmUser struct{ realm, name string }

// Claim records the set's accounts for the config load of ctx, and
// refuses one whose name another handler of the realm gave another
// password hash in that load. A context that never ends tells no load
// from another: nothing is claimed.
func (s *Set) Claim(ctx context.Context, realm string) error {
	load := ctx.Done()
	if load == nil {
		return nil
	}
	claims.Lock()
	defer claims.Unlock()
	users, ok := claims.loads[load]
	if !ok {
		users = make(map[realmUser]ID)
		claims.loads[load] = users
		context.AfterFunc(ctx, func() {
			claims.Lock()
			delete(claims.loads, load)
			claims.Unlock()
		})
	}
	for acct := range s.All() {
		key := realmUser{realm, acct.Name}
		if id, seen := users[key]; seen && id != acct.ID {
			return fmt.Errorf("user %q of realm %q has a different password hash in another site: a user name names one person in a realm (they would share one second factor and passkeys); give the sites realms of their own", acct.Name, realm)
		}
		users[key] = acct.ID
	}
	return nil
}

// All are the set's accounts, in no order.
func (s *Set) All() iter.Seq[*Account] {
	return maps.Values(s.users)
}
