package miniapp

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/web"
)

// rawExchange sends raw bytes to the plain-HTTP port and reads the
// status of the answer; 0 means the server closed the connection without
// one. It fails the test when no answer comes within the deadline.
func rawExchange(t *testing.T, request string, deadline time.Duration) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer within %v: the server hangs", deadline)
		}
		return 0, ""
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestCaddyHostileInput throws malformed and malicious requests at the
// real Caddy. Each case states its status; none may be a 5xx, hang, or
// echo its input unescaped.
func TestCaddyHostileInput(t *testing.T) {
	s := startCaddy(t, t.TempDir(), "")
	c := s.client()
	resp, _ := call(t, c, "POST", httpBase+"/login", "username=ada&password="+adaPassword)
	if resp.StatusCode != 303 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	u, _ := url.Parse(httpBase)
	session := c.Jar.Cookies(u)[0]
	garbage := "\x80\xff\xfe<script>alert(1)</script>\"'%zz"
	tooMany := strings.Repeat("x=1&", 10000) + "name=Ada"
	var cookies200 []string
	for i := range 200 {
		cookies200 = append(cookies200, fmt.Sprintf("c%d=%d", i, i))
	}

	tests := []struct {
		name, method, target, body, ctype string
		header                            []string
		status                            int
	}{
		{"bad escape", "GET", "/hello?name=%zz", "", "", nil, 400},
		{"semicolon", "GET", "/hello?name=a;b", "", "", nil, 400},
		{"10000 parameters in the URL", "GET", "/hello?" + strings.Repeat("x=1&", 9999) + "name=Ada", "", "", nil, 431},
		{"10000 parameters", "POST", "/hello", strings.Repeat("x=1&", 9999) + "name=Ada", form, nil, 200},
		{"10001 parameters", "POST", "/hello", tooMany, form, nil, 400},
		{"invalid UTF-8 name", "GET", "/hello?name=%C3%28", "", "", nil, 400},
		{"control character name", "GET", "/hello?name=a%07b", "", "", nil, 400},
		{"CRLF in name", "GET", "/hello?name=a%0D%0ASet-Cookie:%20x=1", "", "", nil, 400},
		{"script in name", "GET", "/hello?name=%3Cscript%3E", "", "", []string{"Accept", "text/html"}, 200},
		{"garbage header values", "GET", "/hello", "", "", []string{"Accept", garbage, "Accept-Language", garbage}, 200},
		{"garbage cookie", "GET", "/profile", "", "", []string{"Cookie", "miniapp_session=" + garbage}, 401},
		{"100 KiB cookie", "GET", "/profile", "", "", []string{"Cookie", "miniapp_session=" + strings.Repeat("A", 100<<10)}, 431},
		{"3 KiB cookie", "GET", "/profile", "", "", []string{"Cookie", "miniapp_session=" + strings.Repeat("A", 3<<10)}, 401},
		{"200 cookies", "GET", "/profile", "", "", []string{"Cookie", strings.Join(cookies200, "; ")}, 401},
		{"200 cookies and the session", "GET", "/profile", "", "", []string{"Cookie", strings.Join(cookies200, "; ") + "; " + session.Name + "=" + session.Value}, 200},
		{"10 MiB form", "POST", "/hello", "name=" + strings.Repeat("a", 10<<20), form, nil, 413},
		{"10 MiB login", "POST", "/login", "username=ada&password=" + strings.Repeat("a", 10<<20), form, nil, 413},
		{"JSON nested 10000 deep", "POST", "/hello", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), jsonType, nil, 400},
		{"JSON login nested", "POST", "/login", `{"username":` + strings.Repeat("[", 10000), jsonType, nil, 400},
		{"wrong content type", "POST", "/login", "username=ada", "text/xml", nil, 415},
		{"multipart", "POST", "/hello", "--x--", "multipart/form-data; boundary=x", nil, 415},
		{"trailing slash", "GET", "/hello/", "", "", nil, 404},
		{"upper case", "GET", "/HELLO", "", "", nil, 404},
		{"double slash", "GET", "//hello", "", "", nil, 404},
		{"encoded slash", "GET", "/hello%2f..", "", "", nil, 308},
		{"matrix parameter", "GET", "/profile;x", "", "", nil, 404},
		{"dot segments to protected", "GET", "/hello/../private/secret.txt", "", "", nil, 401},
		{"next off site", "POST", "/login?next=%2F%2Fevil.example", "username=ada&password=" + adaPassword, form, nil, 303},
		{"next with CRLF", "POST", "/login?next=%2Fa%0D%0ALocation:%20https://evil.example", "username=ada&password=" + adaPassword, form, nil, 303},
		{"CRLF in username", "POST", "/login", "username=ada%0D%0Aforged&password=x", form, nil, 400},
		{"tab and garbage in X-Forwarded-For", "POST", "/login", "username=ada&password=x", form, []string{"X-Forwarded-For", "1.2.3.4\tevil, <script>"}, 401},
		{"garbage method", "BREW", "/hello", "", "", nil, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if tt.ctype != "" {
				header = append(header, "Content-Type", tt.ctype)
			}
			// a fresh client without the session's jar, except where the
			// case sends the cookie itself
			resp, body := call(t, s.client(), tt.method, httpBase+tt.target, tt.body, header...)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d (%.80q)", resp.StatusCode, tt.status, body)
			}
			if loc := resp.Header.Get("Location"); tt.status == 303 && loc != "/profile" {
				t.Errorf("redirected to %q", loc)
			}
			// /hello echoes its name as text/plain with nosniff, which no
			// browser renders as HTML; everything else must not echo at all
			plain := resp.Header.Get("Content-Type") == web.TextPlain && resp.Header.Get("X-Content-Type-Options") == "nosniff"
			for _, bad := range []string{"<script>", "evil.example", "forged"} {
				if (!plain && strings.Contains(body, bad)) || strings.Contains(fmt.Sprint(resp.Header), bad) {
					t.Errorf("response echoes %q: %.200q", bad, body)
				}
			}
		})
	}

	t.Run("duplicate Content-Length", func(t *testing.T) {
		status, _ := rawExchange(t, "POST /hello HTTP/1.1\r\nHost: localhost\r\nContent-Type: "+form+"\r\nContent-Length: 8\r\nContent-Length: 9\r\n\r\nname=Ada", 5*time.Second)
		if status != 400 {
			t.Errorf("status %d, want 400", status)
		}
	})
	t.Run("chunked body with no end", func(t *testing.T) {
		start := time.Now()
		status, _ := rawExchange(t, "POST /hello HTTP/1.1\r\nHost: localhost\r\nContent-Type: "+form+"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nname=\r\n", 10*time.Second)
		// the read_body timeout (2s) ends the read: a 400, or a closed
		// connection, never a hang or a 5xx
		if status != 400 && status != 0 {
			t.Errorf("status %d, want 400 or a closed connection", status)
		}
		if time.Since(start) > 6*time.Second {
			t.Errorf("took %v", time.Since(start))
		}
	})
	for name, header := range map[string]string{
		"bare CR in a header":       "X-A: a\rb",
		"bare CR in the cookie":     "Cookie: miniapp_session=a\rSet-Cookie: x=1",
		"NUL in X-Forwarded-For":    "X-Forwarded-For: 1.2.3.4\x00",
		"bare LF in the user agent": "User-Agent: a\nSet-Cookie: x=1",
	} {
		t.Run(name, func(t *testing.T) {
			status, body := rawExchange(t, "GET /profile HTTP/1.1\r\nHost: localhost\r\n"+header+"\r\n\r\n", 5*time.Second)
			if status != 400 && status != 401 || strings.Contains(body, "Set-Cookie") {
				t.Errorf("status %d %q, want 400 (or 401 where Go reads a bare LF as a line end)", status, body)
			}
		})
	}

	// nothing that was sent as a secret or an attack, nor the key, reached
	// the logs
	keys, err := os.ReadFile(filepath.Join(s.storage, "miniapp", "miniapp", "keys.json"))
	var stored struct{ Keys []string }
	if err != nil || json.Unmarshal(keys, &stored) != nil || len(stored.Keys) != 1 {
		t.Fatalf("key set: %v", err)
	}
	for _, file := range []string{s.logFile, s.debugLog} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{adaPassword, session.Value, "forged\"", stored.Keys[0]} {
			if strings.Contains(string(data), secret) {
				t.Errorf("%s holds %.20q…", file, secret)
			}
		}
	}
}

// TestCaddySlowClients opens many connections that send their headers a
// byte at a time: other clients are still served at once, and the slow
// ones are cut off after read_header.
func TestCaddySlowClients(t *testing.T) {
	startCaddy(t, t.TempDir(), "")
	var slow []net.Conn
	defer func() {
		for _, c := range slow {
			_ = c.Close()
		}
	}()
	for range 200 {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: loc")
		slow = append(slow, conn)
	}
	start := time.Now()
	status, body := rawExchange(t, "GET /hello?name=Fast HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 2*time.Second)
	if status != 200 || body != "Hello, Fast!" || time.Since(start) > time.Second {
		t.Fatalf("a normal client behind 200 slow ones: %d %q in %v", status, body, time.Since(start))
	}
	// after read_header (2s) the server has closed the slow connections
	time.Sleep(3 * time.Second)
	closed := 0
	for _, conn := range slow {
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 1)
		_, _ = io.WriteString(conn, "a")
		if _, err := conn.Read(buf); err != nil && !isTimeout(err) {
			closed++
		} else if err == nil {
			closed++ // answered (408 or 400) and so done with
		}
	}
	if closed < len(slow) {
		t.Errorf("%d of %d slow connections still open after read_header", len(slow)-closed, len(slow))
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
