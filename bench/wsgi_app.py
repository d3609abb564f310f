"""The seed's design, for comparison: the same three routes as a minimal
WSGI app (no framework), run by bench/run.sh under Debian's gunicorn.

/hello?name=...  text greeting
/login           POST username/password form -> signed cookie, 303 /profile
/profile         the signed-in user, as JSON, or 401
"""

import hashlib
import hmac
import json
import os
import time
from urllib.parse import parse_qs

# one secret for all workers: gunicorn loads the app once (--preload) and forks
SECRET = os.urandom(32)
USERS = {"bench": hashlib.sha256(b"bench-password").hexdigest()}
LIFETIME = 12 * 3600


def sign(value):
    mac = hmac.new(SECRET, value.encode(), hashlib.sha256).hexdigest()
    return value + "|" + mac


def verify(token):
    value, _, mac = token.rpartition("|")
    good = hmac.new(SECRET, value.encode(), hashlib.sha256).hexdigest()
    if not value or not hmac.compare_digest(mac, good):
        return None
    user, _, expires = value.partition("|")
    if not expires.isdigit() or int(expires) < time.time():
        return None
    return user


def cookie(environ, name):
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def respond(start_response, status, body, ctype="text/plain; charset=utf-8", headers=()):
    data = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))] + list(headers))
    return [data]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/hello":
        name = parse_qs(environ.get("QUERY_STRING", "")).get("name", ["World"])[0] or "World"
        return respond(start_response, "200 OK", "Hello, %s!" % name)
    if path == "/login" and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(min(length, 65536)).decode())
        user = form.get("username", [""])[0]
        password = form.get("password", [""])[0]
        digest = hashlib.sha256(password.encode()).hexdigest()
        if not hmac.compare_digest(USERS.get(user, ""), digest):
            return respond(start_response, "401 Unauthorized", "invalid username or password\n")
        token = sign("%s|%d" % (user, time.time() + LIFETIME))
        return respond(start_response, "303 See Other", "See Other\n",
                       headers=[("Location", "/profile"), ("Set-Cookie", "session=%s; Path=/; HttpOnly" % token)])
    if path == "/profile":
        user = verify(cookie(environ, "session") or "")
        if user is None:
            return respond(start_response, "401 Unauthorized", "sign in required\n")
        return respond(start_response, "200 OK", json.dumps({"username": user}), "application/json")
    return respond(start_response, "404 Not Found", "not found\n")
