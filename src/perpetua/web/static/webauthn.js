// Security keys and passkeys in the console. The server sends WebAuthn options as
// JSON with base64url fields; this file turns them into the buffers the browser
// API wants, and the browser's answer back into JSON. Nothing else is done here:
// every check happens on the server.
(function () {
  "use strict";

  function toBuffer(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return { type: d.type, id: toBuffer(d.id), transports: d.transports };
    });
  }

  function creationOptions(o) {
    o.challenge = toBuffer(o.challenge);
    o.user.id = toBuffer(o.user.id);
    o.excludeCredentials = descriptors(o.excludeCredentials);
    return { publicKey: o };
  }

  function requestOptions(o) {
    o.challenge = toBuffer(o.challenge);
    o.allowCredentials = descriptors(o.allowCredentials);
    return { publicKey: o };
  }

  function credentialJSON(c) {
    var r = c.response;
    var response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      response.userHandle = r.userHandle ? toText(r.userHandle) : null;
    }
    return {
      id: c.id,
      rawId: toText(c.rawId),
      type: c.type,
      response: response,
      clientExtensionResults: c.getClientExtensionResults(),
      authenticatorAttachment: c.authenticatorAttachment || null
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.title || "Refused");
        return data;
      });
    });
  }

  function show(element, text) {
    var target = document.getElementById(element.dataset.status || "webauthn-status");
    if (target) target.textContent = text;
  }

  function run(button) {
    var kind = button.dataset.webauthn;
    var csrf = button.dataset.csrf;
    var nameField = button.dataset.nameField
      ? document.getElementById(button.dataset.nameField) : null;
    show(button, "Waiting for your security key…");
    post(button.dataset.optionsUrl, csrf).then(function (data) {
      if (kind === "register") {
        return navigator.credentials.create(creationOptions(data.options));
      }
      return navigator.credentials.get(requestOptions(data.options));
    }).then(function (credential) {
      var body = { credential: credentialJSON(credential) };
      if (nameField) body.name = nameField.value;
      return post(button.dataset.submitUrl, csrf, body);
    }).then(function (data) {
      if (data.recovery_codes) {
        var list = document.getElementById("new-recovery-codes");
        list.textContent = data.recovery_codes.join("\n");
        list.hidden = false;
        show(button, "Security key added. Save these recovery codes now.");
        return;
      }
      window.location.assign(data.redirect || window.location.pathname);
    }).catch(function (error) {
      show(button, error.message || "The security key was not accepted.");
    });
  }

  var buttons = document.querySelectorAll("button[data-webauthn]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (event) {
      event.preventDefault();
      run(event.currentTarget);
    });
  }
})();
