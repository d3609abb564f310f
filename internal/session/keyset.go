package session

import (
	"encoding/json"
	"errors"
	"fmt"
)

// KeySet is the key set a realm keeps in its store when no secret_key
// is configured: made once, by the first node, and read by every other.
type KeySet struct {
	Keys []string `json:"keys"`
}

// NewKeySet makes a key set of one random key, as the store keeps it.
func NewKeySet() ([]byte, error) {
	return json.Marshal(KeySet{Keys: []string{NewSecret()}})
}

// OpenKeySet is the key ring of a key set as the store keeps it.
func OpenKeySet(data []byte, realm string) (*Keyring, error) {
	var set KeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("key set: %v", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the key set holds no keys")
	}
	secrets := make([][]byte, 0, len(set.Keys))
	for _, k := range set.Keys {
		secret, err := DecodeSecret(k)
		if err != nil {
			return nil, fmt.Errorf("key set: %v", err)
		}
		secrets = append(secrets, secret)
	}
	return NewKeyring(secrets, realm)
}

// ParseKeys is the key ring of the configured secret_key values, each
// first given to replace (placeholders such as {env.MINIAPP_KEY}).
func ParseKeys(values []string, realm string, replace func(string) string) (*Keyring, error) {
	secrets := make([][]byte, 0, len(values))
	for i, v := range values {
		secret, err := DecodeSecret(replace(v))
		if err != nil {
			return nil, fmt.Errorf("secret_key %d: %v", i+1, err)
		}
		secrets = append(secrets, secret)
	}
	return NewKeyring(secrets, realm)
}
