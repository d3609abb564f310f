package miniapp

import (
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// ServeHTTP reads the session once and sets the user placeholders,
// answers the module's own routes (matched on the exact path), guards
// the protected paths and passes every other request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	sess := h.session(r)
	if sess != nil {
		// login and logout set a cookie of their own
		if r.URL.Path != "/login" && r.URL.Path != "/logout" {
			h.renew(w, r, sess)
		}
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if sess != nil {
			repl.Set("http.miniapp.user", sess.user.placeholder)
			// Caddy's access log shows this one as user_id; an identity set
			// by an earlier handler stays when nobody is signed in here
			repl.Set("http.auth.user.id", sess.user.placeholder)
		} else {
			repl.Set("http.miniapp.user", "")
		}
	}
	var err error
	switch r.URL.Path {
	case "/hello":
		err = h.hello(w, r)
	case "/login":
		err = h.login(w, r)
	case "/profile":
		err = h.profile(w, r, sess)
	case "/logout":
		err = h.logout(w, r, sess)
	default:
		if len(h.protected) > 0 && h.protected.Match(r) {
			if sess == nil {
				err = h.signInFirst(w, r)
				break
			}
			// content behind the login is for this user's browser only
			w.Header().Set("Cache-Control", "private")
			w.Header().Add("Vary", "Cookie")
		}
		return next.ServeHTTP(w, r)
	}
	if err != nil {
		return h.fail(w, r, err)
	}
	return nil
}

// allow refuses a method the route does not take with 405 and Allow.
func allow(w http.ResponseWriter, r *http.Request, allowed string, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	w.Header().Set("Allow", allowed)
	return reject(http.StatusMethodNotAllowed, "method not allowed")
}

// sameOrigin refuses cross-site POSTs with 403.
func (h *Handler) sameOrigin(r *http.Request) error {
	if h.csrf.Check(r) != nil {
		return reject(http.StatusForbidden, "cross-origin request refused")
	}
	return nil
}

// hello greets name, from the query or else from a form or JSON body.
func (h *Handler) hello(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	name, err := formValue(r.URL.RawQuery, "name")
	if err != nil {
		return err
	}
	asJSON := negotiate(r) == formatJSON
	if r.Method == http.MethodPost {
		if err := h.sameOrigin(r); err != nil {
			return err
		}
		kind, body, err := readBody(w, r, h.MaxBodySize)
		if err != nil {
			return err
		}
		var fromBody string
		switch kind {
		case bodyForm:
			fromBody, err = formValue(string(body), "name")
		case bodyJSON:
			var in struct {
				Name string `json:"name"`
			}
			err = decodeJSON(body, &in)
			fromBody = in.Name
		}
		if err != nil {
			return err
		}
		if name == "" {
			name = fromBody
		}
	}
	if len(name) > maxNameLen {
		return reject(http.StatusBadRequest, "name is longer than 256 bytes")
	}
	if err := checkText(name); err != nil {
		return err
	}
	if name == "" {
		name = "World"
	}
	if asJSON {
		return h.writeJSON(w, r, http.StatusOK, struct {
			Message string `json:"message"`
		}{"Hello, " + name + "!"})
	}
	body := make([]byte, 0, len("Hello, !")+len(name))
	body = append(append(append(body, "Hello, "...), name...), '!')
	write(w, r, http.StatusOK, textPlain, body)
	return nil
}

// credentials is a login attempt as the form or JSON body gives it.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Next     string `json:"next"`
}

// login shows the form (GET) or checks a password and starts a session
// (POST).
func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, "GET, HEAD, POST", http.MethodGet, http.MethodHead, http.MethodPost); err != nil {
		return err
	}
	next, err := formValue(r.URL.RawQuery, "next")
	if err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		return h.render(w, r, http.StatusOK, "login.html", pageData{Title: "Sign in", Next: safeNext(next)})
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	kind, body, err := readBody(w, r, h.MaxBodySize)
	if err != nil {
		return err
	}
	var in credentials
	switch kind {
	case bodyForm:
		in, err = formCredentials(string(body))
	case bodyJSON:
		err = decodeJSON(body, &in)
	}
	if err != nil {
		return err
	}
	if next == "" {
		next = in.Next
	}
	next = safeNext(next)
	if in.Username == "" || in.Password == "" {
		return reject(http.StatusBadRequest, "username and password are required")
	}
	if len(in.Username) > maxFieldLen || len(in.Password) > maxFieldLen {
		return reject(http.StatusBadRequest, "username or password is too long")
	}
	if err := checkText(in.Username); err != nil {
		return err
	}
	format := negotiate(r)
	ip := clientIP(r)
	if wait := h.throttle.Try(ip, clock.Now()); wait > 0 {
		metrics.logins.WithLabelValues("throttled").Inc()
		h.logger.Warn("login throttled", zap.String("user", in.Username), zap.String("client_ip", ip))
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return reject(http.StatusTooManyRequests, "too many failed logins; try again later")
	}

	if !acquireHashSlot(r.Context()) {
		h.throttle.Succeeded(ip) // not the client's failure
		metrics.logins.WithLabelValues("throttled").Inc()
		h.logger.Warn("login refused: too many password checks in progress", zap.String("user", in.Username), zap.String("client_ip", ip))
		w.Header().Set("Retry-After", "1")
		return reject(http.StatusTooManyRequests, "too many logins in progress; try again shortly")
	}
	user, reason, err := h.authenticate(in.Username, in.Password)
	releaseHashSlot()
	if err != nil {
		h.throttle.Succeeded(ip) // not the client's failure
		return err
	}
	if user == nil {
		metrics.logins.WithLabelValues("failure").Inc()
		h.logger.Warn("login failed", zap.String("user", in.Username), zap.String("client_ip", ip), zap.String("reason", reason))
		const msg = "invalid username or password"
		w.Header().Set("WWW-Authenticate", h.challenge(r))
		if format == formatJSON {
			return h.writeJSON(w, r, http.StatusUnauthorized, map[string]string{"error": msg})
		}
		if format == formatHTML {
			return h.render(w, r, http.StatusUnauthorized, "login.html", pageData{Title: "Sign in", Error: msg, Next: next, User: in.Username})
		}
		return reject(http.StatusUnauthorized, msg)
	}

	h.throttle.Succeeded(ip)
	sess := h.newSession(r.Context(), user.Name)
	h.setCookie(w, r, sess)
	metrics.logins.WithLabelValues("success").Inc()
	h.logger.Info("login", zap.String("user", user.Name), zap.String("client_ip", ip))
	w.Header().Set("Cache-Control", "no-store")
	if format == formatJSON {
		return h.writeJSON(w, r, http.StatusOK, map[string]string{"username": user.Name})
	}
	if next == "" {
		next = "/profile"
	}
	redirect(w, r, next)
	return nil
}

func formCredentials(body string) (credentials, error) {
	var in credentials
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{{"username", &in.Username}, {"password", &in.Password}, {"next", &in.Next}} {
		if *f.dst, err = formValue(body, f.key); err != nil {
			return in, err
		}
	}
	return in, nil
}

// authenticate checks a password. An unknown user costs the same as a
// wrong password: the password is compared with a fake hash of the same
// algorithm and parameters. A nil user comes with the reason class.
func (h *Handler) authenticate(name, password string) (*User, string, error) {
	user, known := h.users[name]
	if !known {
		user = h.fakeUser
	}
	ok, err := user.comparer.Compare(user.hash, []byte(password))
	switch {
	case err != nil:
		return nil, "", err
	case !known:
		return nil, "unknown user", nil
	case !ok:
		return nil, "wrong password", nil
	}
	return user, "", nil
}

// profile shows the signed-in user and the session's times.
func (h *Handler) profile(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := allow(w, r, "GET, HEAD", http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	if sess == nil {
		return h.signInFirst(w, r)
	}
	w.Header().Set("Cache-Control", "no-store")
	if negotiate(r) == formatJSON {
		// built by hand: this is the hot JSON path, and the name is
		// JSON-encoded once at load time
		body := make([]byte, 0, 96+len(sess.user.jsonName))
		body = append(append(append(body, `{"username":`...), sess.user.jsonName...), `,"issued":"`...)
		body = sess.Issued.UTC().AppendFormat(body, isoTime)
		body = append(body, `","expires":"`...)
		body = sess.Expires.UTC().AppendFormat(body, isoTime)
		body = append(body, `"}`...)
		write(w, r, http.StatusOK, appJSON, body)
		return nil
	}
	issued, expires := sess.Issued.UTC(), sess.Expires.UTC()
	write(w, r, http.StatusOK, textHTML, profilePage.Fill(sess.User,
		issued.Format(isoTime), issued.Format(textTime), expires.Format(isoTime), expires.Format(textTime)))
	return nil
}

// signInFirst answers a request that needs a session: browsers go to the
// login page and come back afterwards, other clients get 401.
func (h *Handler) signInFirst(w http.ResponseWriter, r *http.Request) error {
	if negotiate(r) == formatHTML {
		redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()))
		return nil
	}
	w.Header().Set("WWW-Authenticate", h.challenge(r))
	return reject(http.StatusUnauthorized, "sign in required")
}

// challenge is the WWW-Authenticate value of a 401: there is no standard
// scheme for a login form, so it follows the cookie authentication draft
// (draft-broyer-http-cookie-auth) in naming the form and the cookie.
func (h *Handler) challenge(r *http.Request) string {
	return `Cookie realm="miniapp", form-action="/login", cookie-name="` + h.cookieName(r) + `"`
}

// logout ends the session (or, with all=1, every session of the user)
// and clears the cookie.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := allow(w, r, "POST", http.MethodPost); err != nil {
		return err
	}
	if err := h.sameOrigin(r); err != nil {
		return err
	}
	kind, body, err := readBody(w, r, h.MaxBodySize)
	if err != nil {
		return err
	}
	all := ""
	if kind == bodyForm {
		if all, err = formValue(string(body), "all"); err != nil {
			return err
		}
	}
	if sess != nil {
		h.store.Revoke(r.Context(), sess)
		if all == "1" {
			h.store.RevokeAll(r.Context(), sess.User)
		}
		metrics.logouts.Inc()
		h.logger.Info("logout", zap.String("user", sess.User), zap.String("client_ip", clientIP(r)), zap.Bool("everywhere", all == "1"))
	}
	h.clearCookie(w, r)
	redirect(w, r, "/login")
	return nil
}

// redirect sends 303 See Other to a path of this site.
func redirect(w http.ResponseWriter, r *http.Request, location string) {
	w.Header().Set("Location", location)
	write(w, r, http.StatusSeeOther, textPlain, []byte("See Other\n"))
}

// clientIP is Caddy's idea of the client address, which respects
// trusted_proxies.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}
