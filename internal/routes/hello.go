package routes

import (
	"net/http"

	"github.com/caddy-miniapp/miniapp/internal/gate"
	"github.com/caddy-miniapp/miniapp/internal/web"
)

// Hello greets name, from the query or else from a form or JSON body.
func (a *App) Hello(w http.ResponseWriter, r *http.Request, in web.Request, _ *gate.Session) error {
	if err := web.Allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	name, err := web.FormValue(r.URL.RawQuery, "name")
	if err != nil {
		return err
	}
	if r.Method == http.MethodPost {
		if err := a.sameOrigin(r); err != nil {
			return err
		}
		in, err := web.ReadFields(w, r, a.maxBody, "name")
		if err != nil {
			return err
		}
		if name == "" {
			name = in["name"]
		}
	}
	if len(name) > web.MaxNameLen {
		return web.Reject(http.StatusBadRequest, "name is longer than 256 bytes")
	}
	if err := web.CheckText(name); err != nil {
		return err
	}
	if name == "" {
		name = "World"
	}
	if in.Format == web.JSON {
		return a.Site.JSON(w, r, http.StatusOK, struct {
			Message string `json:"message"`
		}{"Hello, " + name + "!"})
	}
	body := make([]byte, 0, len("Hello, !")+len(name))
	body = append(append(append(body, "Hello, "...), name...), '!')
	web.Write(w, r, http.StatusOK, web.TextPlain, body)
	return nil
}
