// One-time links carry their token after "#", which browsers never send to a
// server. Move it into the form that spends it, then drop it from the address bar
// so it is neither bookmarked nor left in history.
(function () {
  "use strict";
  var token = window.location.hash.replace(/^#/, "");
  var fields = document.querySelectorAll("input[data-fragment-token]");
  for (var i = 0; i < fields.length; i++) {
    fields[i].value = token;
  }
  if (token) {
    history.replaceState(null, "", window.location.pathname);
  }
})();
