// Passkeys on the login page, the profile and the two-step setup page,
// through /login/passkey and /profile/passkeys. Served at a path named
// by its content, allowed by script-src 'self': no inline script.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const decode = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
  const encode = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  async function post(path, body, json) {
    const res = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": json ? "application/json" : "application/x-www-form-urlencoded" },
      body: json ? JSON.stringify(body) : new URLSearchParams(body),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { /* an empty or non-JSON answer */ }
    return { res, data };
  }

  // the credential as JSON, its binary fields base64url
  function credentialJSON(cred) {
    const r = cred.response;
    const out = { id: cred.id, rawId: encode(cred.rawId), type: cred.type, authenticatorAttachment: cred.authenticatorAttachment,
      clientExtensionResults: cred.getClientExtensionResults(), response: { clientDataJSON: encode(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = encode(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = encode(r.authenticatorData);
      out.response.signature = encode(r.signature);
      out.response.userHandle = r.userHandle ? encode(r.userHandle) : null;
    }
    return out;
  }

  function show(id, message) {
    const el = $(id);
    if (el) { el.textContent = message; el.hidden = false; }
  }

  const next = () => ($("next") || {}).value || "";

  // sign in: mediation "conditional" waits for the user to pick a
  // passkey in the user name field's autofill
  async function signIn(mediation, signal) {
    const { res, data } = await post("/login/passkey", { action: "begin" });
    if (!res.ok) throw new Error(data.error || "passkeys are not available here");
    const publicKey = data.publicKey;
    publicKey.challenge = decode(publicKey.challenge);
    (publicKey.allowCredentials || []).forEach((c) => { c.id = decode(c.id); });
    const cred = await navigator.credentials.get({ publicKey, mediation, signal });
    const to = next();
    const done = await post("/login/passkey?next=" + encodeURIComponent(to), { ceremony: data.ceremony, credential: credentialJSON(cred) }, true);
    if (done.res.ok) { location.assign(to || "/profile"); return; }
    if (done.res.status === 401 && done.data.second_factor) {
      location.assign("/login?step=code" + (to ? "&next=" + encodeURIComponent(to) : ""));
      return;
    }
    throw new Error(done.data.error || "the passkey was not accepted");
  }

  async function register() {
    // the step-up field the page shows, if any: password or current_code
    const proof = $("passkey-step-up");
    const begin = { action: "begin" };
    if (proof) begin[proof.name] = proof.value;
    const { res, data } = await post("/profile/passkeys", begin);
    if (!res.ok) throw new Error(data.error || "passkeys are not available here");
    const publicKey = data.publicKey;
    publicKey.challenge = decode(publicKey.challenge);
    publicKey.user.id = decode(publicKey.user.id);
    (publicKey.excludeCredentials || []).forEach((c) => { c.id = decode(c.id); });
    const cred = await navigator.credentials.create({ publicKey });
    const done = await post("/profile/passkeys", { ceremony: data.ceremony, credential: credentialJSON(cred), name: ($("passkey-name") || {}).value || "" }, true);
    if (!done.res.ok) throw new Error(done.data.error || "the passkey was not accepted");
    location.assign("/profile");
  }

  const failed = (e) => { if (e.name !== "AbortError") show("passkey-error", e.message || String(e)); };

  if (!window.PublicKeyCredential) {
    show("passkey-unsupported", "This browser does not offer passkeys.");
    return;
  }
  const signInButton = $("passkey-signin");
  if (signInButton) {
    signInButton.hidden = false;
    // the autofill's request waits for the user to pick a passkey in the
    // user name field; it is made again before its ceremony expires (5
    // minutes), and after the button's request ends
    let autofill = null;
    let busy = false;
    let conditional = false;
    const arm = () => {
      if (!conditional || busy) return;
      if (autofill) autofill.abort();
      const ctl = new AbortController();
      autofill = ctl;
      const renew = setTimeout(arm, 4 * 60 * 1000);
      signIn("conditional", ctl.signal).catch((e) => {
        clearTimeout(renew);
        if (ctl.signal.aborted) return;
        failed(e);
        autofill = null;
        setTimeout(arm, 1000);
      });
    };
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => { conditional = available; arm(); });
    }
    signInButton.addEventListener("click", () => {
      busy = true;
      if (autofill) autofill.abort();
      autofill = null;
      signIn("optional").catch(failed).finally(() => { busy = false; arm(); });
    });
  }
  const addButton = $("passkey-add");
  if (addButton) {
    addButton.hidden = false;
    // the proof a new passkey needs, shown only where one can be added
    const proof = $("passkey-proof");
    if (proof) proof.hidden = false;
    addButton.addEventListener("click", () => { register().catch(failed); });
  }
})();
